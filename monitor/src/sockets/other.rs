//! macOS and Windows: the sockets and their pids from `netstat2` (the systems' own
//! interfaces: `proc_pidinfo` on macOS, `GetExtendedTcpTable` on Windows), the process
//! names from `sysinfo`. These report no peer for UDP sockets, so UDP sockets count as
//! unconnected here: only TCP connections are counted and checked.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use anyhow::{Context as _, Result};
use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, TcpState};
use sysinfo::{Pid, ProcessesToUpdate, System};

use crate::model::connection::{Listing, Socket, SocketState, Transport};

pub fn list_sockets() -> Result<Listing> {
    let infos = netstat2::get_sockets_info(
        AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6,
        ProtocolFlags::TCP | ProtocolFlags::UDP,
    )
    .context("failed to list the sockets")?;
    let mut listing = Listing::default();
    let mut pids = HashSet::new();
    for info in infos {
        pids.extend(info.associated_pids.iter().copied());
        let socket = match &info.protocol_socket_info {
            ProtocolSocketInfo::Tcp(tcp) => Socket {
                transport: Transport::Tcp,
                local: SocketAddr::new(tcp.local_addr, tcp.local_port),
                remote: SocketAddr::new(tcp.remote_addr, tcp.remote_port),
                state: tcp_state(&tcp.state),
                pids: info.associated_pids.clone(),
            },
            ProtocolSocketInfo::Udp(udp) => {
                let unspecified: IpAddr = if udp.local_addr.is_ipv4() {
                    Ipv4Addr::UNSPECIFIED.into()
                } else {
                    Ipv6Addr::UNSPECIFIED.into()
                };
                Socket {
                    transport: Transport::Udp,
                    local: SocketAddr::new(udp.local_addr, udp.local_port),
                    remote: SocketAddr::new(unspecified, 0),
                    state: SocketState::Unconnected,
                    pids: info.associated_pids.clone(),
                }
            }
        };
        listing.sockets.push(socket);
    }
    let pids: Vec<Pid> = pids.into_iter().map(Pid::from_u32).collect();
    let mut system = System::new();
    system.refresh_processes(ProcessesToUpdate::Some(&pids), true);
    for pid in pids {
        if let Some(process) = system.process(pid) {
            listing
                .names
                .insert(pid.as_u32(), process.name().to_string_lossy().into_owned());
        }
    }
    Ok(listing)
}

/// The systems' own interfaces say what they cannot see; nothing to check up front.
pub fn missing_rights() -> Option<&'static str> {
    None
}

fn tcp_state(state: &TcpState) -> SocketState {
    match state {
        TcpState::Listen => SocketState::Listen,
        TcpState::SynSent => SocketState::SynSent,
        TcpState::SynReceived => SocketState::SynRecv,
        TcpState::Established => SocketState::Established,
        TcpState::FinWait1 => SocketState::FinWait1,
        TcpState::FinWait2 => SocketState::FinWait2,
        TcpState::CloseWait => SocketState::CloseWait,
        TcpState::Closing => SocketState::Closing,
        TcpState::LastAck => SocketState::LastAck,
        TcpState::TimeWait => SocketState::TimeWait,
        TcpState::Closed | TcpState::DeleteTcb | TcpState::Unknown => SocketState::Closed,
    }
}
