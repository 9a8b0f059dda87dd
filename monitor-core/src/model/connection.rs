//! The host's own sockets as data: what one scan of them finds ([`Listing`]), and the
//! process and socket a connection alert names ([`ConnectionDetails`]).

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::{IpAddr, SocketAddr},
};

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// A socket's state: TCP's, or for UDP whether it has a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketState {
    Listen,
    SynSent,
    SynRecv,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Closed,
    /// UDP with a peer set by `connect()`.
    Connected,
    /// UDP without a peer: it receives from anyone (a server, or `sendto` per packet).
    Unconnected,
}

impl SocketState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::SynSent => "syn_sent",
            Self::SynRecv => "syn_recv",
            Self::Established => "established",
            Self::FinWait1 => "fin_wait1",
            Self::FinWait2 => "fin_wait2",
            Self::CloseWait => "close_wait",
            Self::Closing => "closing",
            Self::LastAck => "last_ack",
            Self::TimeWait => "time_wait",
            Self::Closed => "closed",
            Self::Connected => "connected",
            Self::Unconnected => "unconnected",
        }
    }
}

/// One socket of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub transport: Transport,
    pub local: SocketAddr,
    /// Unspecified (`0.0.0.0:0`, `[::]:0`) without a peer.
    pub remote: SocketAddr,
    pub state: SocketState,
    /// The processes holding it (several after a fork); empty when no process could be
    /// read for it (another user's, without the rights; or a socket in TIME-WAIT,
    /// which no process holds any more).
    pub pids: Vec<u32>,
}

impl Socket {
    /// Whether it has a peer address.
    pub fn has_peer(&self) -> bool {
        !self.remote.ip().is_unspecified() && self.remote.port() != 0
    }

    /// What is counted as a connection: TCP established or connecting, UDP with a peer.
    pub fn is_connection(&self) -> bool {
        match self.transport {
            Transport::Tcp => matches!(
                self.state,
                SocketState::Established | SocketState::SynSent | SocketState::SynRecv
            ),
            Transport::Udp => self.state == SocketState::Connected && self.has_peer(),
        }
    }

    /// Whether it was accepted on (or, for UDP, shares the port of) one of the host's
    /// listening sockets: the peer opened it, not the process.
    pub fn is_inbound(&self, listeners: &Listeners) -> bool {
        listeners.contains(self.transport, self.local)
    }

    /// The remote address, IPv4-mapped IPv6 shown as IPv4.
    pub fn remote_canonical(&self) -> SocketAddr {
        SocketAddr::new(self.remote.ip().to_canonical(), self.remote.port())
    }

    pub fn local_canonical(&self) -> SocketAddr {
        SocketAddr::new(self.local.ip().to_canonical(), self.local.port())
    }
}

/// What one scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub sockets: Vec<Socket>,
    /// Names of the processes that hold sockets, by pid.
    pub names: HashMap<u32, String>,
    /// Processes whose open files could not be read (another user's, without root or
    /// `CAP_SYS_PTRACE`): their sockets are listed without a process.
    pub unreadable_processes: usize,
}

impl Listing {
    pub fn name(&self, pid: u32) -> Option<&str> {
        self.names.get(&pid).map(String::as_str)
    }

    /// The host's listening ports: TCP listeners and unconnected UDP sockets.
    pub fn listeners(&self) -> Listeners {
        let mut listeners = Listeners::default();
        for s in &self.sockets {
            let listening = match s.transport {
                Transport::Tcp => s.state == SocketState::Listen,
                Transport::Udp => !s.has_peer(),
            };
            if listening {
                listeners
                    .ports
                    .insert((s.transport, s.local.ip().to_canonical(), s.local.port()));
            }
        }
        listeners
    }
}

/// Local (protocol, address, port) that something listens on; an unspecified address
/// listens on every address.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    ports: HashSet<(Transport, IpAddr, u16)>,
}

impl Listeners {
    pub fn contains(&self, transport: Transport, local: SocketAddr) -> bool {
        let ip = local.ip().to_canonical();
        let any: [IpAddr; 2] = [
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            std::net::Ipv6Addr::UNSPECIFIED.into(),
        ];
        std::iter::once(ip)
            .chain(any)
            .any(|ip| self.ports.contains(&(transport, ip, local.port())))
    }
}

/// The process and socket behind a connection alert; what the JSON records carry as
/// predecessor 002's `pid`, `local_ip`, ... fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionDetails {
    /// None when no process could be read for the socket (see [`Socket::pids`]).
    pub pid: Option<u32>,
    pub process: Option<String>,
    /// For `excessive_connections`, the connections the process holds; for
    /// `blocklisted_connection`, its sockets to the listed address.
    pub connections: usize,
    /// For `blocklisted_connection`: the socket (the first, when several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketDetails>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketDetails {
    pub protocol: Transport,
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub state: SocketState,
}

impl SocketDetails {
    pub fn of(socket: &Socket) -> Self {
        let (local, remote) = (socket.local_canonical(), socket.remote_canonical());
        Self {
            protocol: socket.transport,
            local_ip: local.ip(),
            local_port: local.port(),
            remote_ip: remote.ip(),
            remote_port: remote.port(),
            state: socket.state,
        }
    }
}

impl fmt::Display for SocketDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} → {} ({})",
            self.protocol.as_str(),
            SocketAddr::new(self.local_ip, self.local_port),
            SocketAddr::new(self.remote_ip, self.remote_port),
            self.state.as_str()
        )
    }
}
