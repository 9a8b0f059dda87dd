//! The connection monitor: the host's own TCP and UDP sockets (IPv4 and IPv6) with the
//! processes that hold them, as predecessor 002 watched them. Packet counters cannot
//! see processes; this can.
//!
//! Every `connections.interval` a background thread lists the sockets ([`list_sockets`]:
//! `/proc` on Linux, `netstat2` and `sysinfo` elsewhere) and hands the [`Listing`] to
//! the polling loop ([`ConnectionScanner`]). The decisions are pure functions of that
//! listing ([`evaluate`]):
//!
//! - `blocklisted_connection`: a socket whose remote address is on the blocklist (the
//!   packet detector's list, `lists.blocklist` and its files), one alert per process
//!   and listed address, naming pid, process, both ends and ports.
//! - `excessive_connections`: a process holding more than `max_per_process`
//!   connections.
//!
//! What counts as a connection ([`Socket::is_connection`]): a TCP socket that is
//! established or connecting (SYN sent or received), and a UDP socket with a peer
//! (`connect()`ed). Listeners, unconnected UDP sockets and closing TCP states
//! (FIN-WAIT, CLOSE-WAIT, TIME-WAIT, ...) are not. By default only connections the
//! process opened count ([`Socket::is_inbound`] tells them from those accepted on one
//! of the host's listening ports): a busy server is not a process "opening too many
//! connections" (`count_inbound = true` counts both, as predecessor 002 did).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    net::{IpAddr, SocketAddr},
};

use serde::Serialize;

use crate::{
    alert::{AlertKind, AlertSource, Finding, Unit},
    config::ConnectionsConfig,
    detect::Lists,
    report::human::thousands,
};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod other;
mod scanner;

#[cfg(target_os = "linux")]
pub use linux::{list_sockets, missing_rights};
#[cfg(not(target_os = "linux"))]
pub use other::{list_sockets, missing_rights};
pub use scanner::{ConnectionScanner, next_scan};

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
    /// CAP_SYS_PTRACE): their sockets are listed without a process.
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
    fn of(socket: &Socket) -> Self {
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

/// How a process is named in an alert's target: `curl[1234]`, `pid 1234` when its name
/// is unknown, `unknown process` when the socket's owner could not be read.
pub fn process_label(pid: Option<u32>, name: Option<&str>) -> String {
    match (pid, name) {
        (Some(pid), Some(name)) => format!("{name}[{pid}]"),
        (Some(pid), None) => format!("pid {pid}"),
        (None, _) => "unknown process".to_owned(),
    }
}

fn process_words(pid: Option<u32>, name: Option<&str>) -> String {
    match (pid, name) {
        (Some(pid), Some(name)) => format!("{name} (pid {pid})"),
        (Some(pid), None) => format!("pid {pid}"),
        (None, _) => "an unknown process".to_owned(),
    }
}

/// Every connection alert in one listing, sorted by kind, source and target.
pub fn evaluate(listing: &Listing, lists: &Lists, config: &ConnectionsConfig) -> Vec<Finding> {
    let mut found = blocklisted_connections(listing, lists);
    found.extend(excessive_connections(listing, config));
    found.sort_by(|a, b| (a.kind, a.source, &a.target).cmp(&(b.kind, b.source, &b.target)));
    found
}

/// Sockets (any state with a peer, listeners aside) whose remote address is on the
/// blocklist and not on the allowlist: one finding per process and listed address.
pub fn blocklisted_connections(listing: &Listing, lists: &Lists) -> Vec<Finding> {
    if lists.blocklist.is_empty() {
        return Vec::new();
    }
    // (pid, remote address) -> its sockets, in a stable order.
    let mut hits: BTreeMap<(Option<u32>, IpAddr), Vec<&Socket>> = BTreeMap::new();
    for socket in &listing.sockets {
        if !socket.has_peer() || socket.state == SocketState::Listen {
            continue;
        }
        let remote = socket.remote.ip().to_canonical();
        if !lists.blocklist.contains(remote) || lists.allowlist.contains(remote) {
            continue;
        }
        if socket.pids.is_empty() {
            hits.entry((None, remote)).or_default().push(socket);
        }
        for pid in &socket.pids {
            hits.entry((Some(*pid), remote)).or_default().push(socket);
        }
    }
    hits.into_iter()
        .map(|((pid, remote), mut sockets)| {
            // The connection in use first (established before closing states), then
            // by ports, so the same one is named from scan to scan.
            sockets.sort_by_key(|s| (!s.is_connection(), s.local, s.remote));
            let socket = SocketDetails::of(sockets[0]);
            let name = pid.and_then(|pid| listing.name(pid));
            let listed_as = match lists.blocklist.longest_match(remote) {
                Some(entry)
                    if entry.prefix() as usize != if remote.is_ipv4() { 32 } else { 128 } =>
                {
                    format!(" (listed as {entry})")
                }
                _ => String::new(),
            };
            let more = match sockets.len() {
                1 => String::new(),
                n => format!("; {n} sockets to it"),
            };
            Finding {
                kind: AlertKind::BlocklistedConnection,
                source: AlertSource::Ip(remote),
                target: process_label(pid, name),
                value: sockets.len() as f64,
                threshold: 1.0,
                unit: Unit::Connections,
                message: format!(
                    "{} has a connection to blocklisted {remote}{listed_as}: {socket}{more}",
                    process_words(pid, name)
                ),
                flow: None,
                connection: Some(ConnectionDetails {
                    pid,
                    process: name.map(str::to_owned),
                    connections: sockets.len(),
                    socket: Some(socket),
                }),
            }
        })
        .collect()
}

/// Processes holding more than `config.max_per_process` connections.
pub fn excessive_connections(listing: &Listing, config: &ConnectionsConfig) -> Vec<Finding> {
    let limit = config.max_per_process.get() as usize;
    let listeners = listing.listeners();
    let mut per_pid: BTreeMap<u32, Vec<&Socket>> = BTreeMap::new();
    for socket in &listing.sockets {
        if !socket.is_connection() || (!config.count_inbound && socket.is_inbound(&listeners)) {
            continue;
        }
        for pid in &socket.pids {
            per_pid.entry(*pid).or_default().push(socket);
        }
    }
    per_pid
        .into_iter()
        .filter(|(_, sockets)| sockets.len() > limit)
        .map(|(pid, sockets)| {
            let name = listing.name(pid);
            let count = sockets.len();
            let tcp = sockets
                .iter()
                .filter(|s| s.transport == Transport::Tcp)
                .count();
            let mut peers: HashMap<IpAddr, usize> = HashMap::new();
            for s in &sockets {
                *peers.entry(s.remote.ip().to_canonical()).or_default() += 1;
            }
            let mut peers: Vec<_> = peers.into_iter().collect();
            peers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let top: Vec<String> = peers
                .iter()
                .take(3)
                .map(|(ip, n)| format!("{ip} ({n})"))
                .collect();
            Finding {
                kind: AlertKind::ExcessiveConnections,
                source: AlertSource::Process(pid),
                target: process_label(Some(pid), name),
                value: count as f64,
                threshold: limit as f64,
                unit: Unit::Connections,
                message: format!(
                    "{} holds {} connections (more than {}): {tcp} tcp, {} udp, to {} peers; most to {}",
                    process_words(Some(pid), name),
                    thousands(count as u64),
                    thousands(limit as u64),
                    count - tcp,
                    peers.len(),
                    top.join(", ")
                ),
                flow: None,
                connection: Some(ConnectionDetails {
                    pid: Some(pid),
                    process: name.map(str::to_owned),
                    connections: count,
                    socket: None,
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
