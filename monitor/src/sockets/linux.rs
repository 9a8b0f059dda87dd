//! Linux: the socket tables of `/proc/net/{tcp,tcp6,udp,udp6}` (every socket of the
//! monitor's network namespace, whoever owns it) and, to find their owners, every
//! process's open files (`/proc/<pid>/fd`: a socket there is `socket:[inode]`, the
//! inode the tables name). The tables, processes and names are read through the
//! `procfs` crate.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use procfs::{
    ProcError,
    net::{TcpState, UdpState},
};

use crate::model::connection::{Listing, Socket, SocketState, Transport};

/// The longest name the kernel keeps for a process (`comm`, `TASK_COMM_LEN` - 1).
const COMM_MAX: usize = 15;

/// Lists the host's TCP and UDP sockets, IPv4 and IPv6, with the processes holding
/// them. A process that exits during the scan is skipped; one whose files cannot be
/// read is counted in [`Listing::unreadable_processes`] and its sockets have no pid.
pub fn list_sockets() -> Result<Listing> {
    let mut sockets = Vec::new();
    let mut inodes: Vec<u64> = Vec::new();
    for (table, entries) in [
        ("/proc/net/tcp", optional(procfs::net::tcp())),
        ("/proc/net/tcp6", optional(procfs::net::tcp6())),
    ] {
        for e in entries.with_context(|| format!("failed to read {table}"))? {
            sockets.push(Socket {
                transport: Transport::Tcp,
                local: e.local_address,
                remote: e.remote_address,
                state: tcp_state(&e.state),
                pids: Vec::new(),
            });
            inodes.push(e.inode);
        }
    }
    for (table, entries) in [
        ("/proc/net/udp", optional(procfs::net::udp())),
        ("/proc/net/udp6", optional(procfs::net::udp6())),
    ] {
        for e in entries.with_context(|| format!("failed to read {table}"))? {
            let connected = matches!(e.state, UdpState::Established);
            sockets.push(Socket {
                transport: Transport::Udp,
                local: e.local_address,
                remote: e.remote_address,
                state: if connected {
                    SocketState::Connected
                } else {
                    SocketState::Unconnected
                },
                pids: Vec::new(),
            });
            inodes.push(e.inode);
        }
    }

    // inode -> index in `sockets`; inode 0 is a socket no process holds (TIME-WAIT).
    let by_inode: HashMap<u64, usize> = inodes
        .iter()
        .enumerate()
        .filter(|(_, inode)| **inode != 0)
        .map(|(index, inode)| (*inode, index))
        .collect();
    let mut listing = Listing::default();
    let processes = procfs::process::all_processes().context("failed to list /proc")?;
    for process in processes {
        let Ok(process) = process else { continue };
        let pid = process.pid() as u32;
        let owns = match owned_sockets(pid, &by_inode) {
            Ok(indexes) => {
                for &index in &indexes {
                    let pids = &mut sockets[index].pids;
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                }
                !indexes.is_empty()
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                listing.unreadable_processes += 1;
                continue;
            }
            // Exited meanwhile.
            Err(_) => continue,
        };
        if owns && let Some(name) = process_name(&process) {
            listing.names.insert(pid, name);
        }
    }
    listing.sockets = sockets;
    Ok(listing)
}

/// What the monitor lacks to see every process's sockets, if anything: other users'
/// `/proc/<pid>/fd` need `CAP_SYS_PTRACE` (and `CAP_DAC_READ_SEARCH` to enter it), and
/// under `hidepid` (systemd's `ProtectProc=invisible`) their processes are not even
/// listed without `CAP_SYS_PTRACE`.
pub fn missing_rights() -> Option<&'static str> {
    use caps::{CapSet, Capability};
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    match (
        has(Capability::CAP_SYS_PTRACE),
        has(Capability::CAP_DAC_READ_SEARCH),
    ) {
        (true, true) => None,
        (false, true) => Some("CAP_SYS_PTRACE"),
        (true, false) => Some("CAP_DAC_READ_SEARCH"),
        (false, false) => Some("CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"),
    }
}

/// The sockets of `by_inode` that process `pid` holds open (their indexes).
///
/// Read here with one `readlink` per descriptor rather than through
/// `procfs::Process::fd`, which opens and stats each descriptor too (four system
/// calls instead of one): with thousands of descriptors that is most of a scan's time.
fn owned_sockets(pid: u32, by_inode: &HashMap<u64, usize>) -> std::io::Result<Vec<usize>> {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}/fd"));
    let mut owned = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let Ok(entry) = entry else { continue };
        // A descriptor closed meanwhile has no link any more.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(index) = inode.and_then(|inode| by_inode.get(&inode)) {
            owned.push(*index);
        }
    }
    Ok(owned)
}

/// A table that does not exist (IPv6 disabled) is an empty one.
fn optional<T>(entries: procfs::ProcResult<Vec<T>>) -> procfs::ProcResult<Vec<T>> {
    match entries {
        Err(ProcError::NotFound(_)) => Ok(Vec::new()),
        other => other,
    }
}

/// The process's name as `ps` shows it (`comm`); when the kernel cut it at 15
/// characters, the name of the program from the command line if it begins with it
/// (as psutil does): `systemd-resolved`, not `systemd-resolve`.
fn process_name(process: &procfs::process::Process) -> Option<String> {
    let comm = process.stat().ok()?.comm;
    if comm.len() < COMM_MAX {
        return Some(comm);
    }
    let full = process.cmdline().ok().and_then(|args| {
        let program = args.into_iter().next()?;
        let base = program.rsplit('/').next()?.to_owned();
        base.starts_with(&comm).then_some(base)
    });
    Some(full.unwrap_or(comm))
}

fn tcp_state(state: &TcpState) -> SocketState {
    match state {
        TcpState::Established => SocketState::Established,
        TcpState::SynSent => SocketState::SynSent,
        TcpState::SynRecv | TcpState::NewSynRecv => SocketState::SynRecv,
        TcpState::FinWait1 => SocketState::FinWait1,
        TcpState::FinWait2 => SocketState::FinWait2,
        TcpState::TimeWait => SocketState::TimeWait,
        TcpState::Close => SocketState::Closed,
        TcpState::CloseWait => SocketState::CloseWait,
        TcpState::LastAck => SocketState::LastAck,
        TcpState::Listen => SocketState::Listen,
        TcpState::Closing => SocketState::Closing,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};

    use super::*;

    /// Real sockets of this test process are found with its pid, in the right state.
    #[test]
    fn finds_our_own_sockets_with_our_pid() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        let udp = UdpSocket::bind("[::1]:0").unwrap();
        let peer = UdpSocket::bind("[::1]:0").unwrap();
        udp.connect(peer.local_addr().unwrap()).unwrap();

        let listing = list_sockets().unwrap();
        let me = std::process::id();
        let find = |local: std::net::SocketAddr, transport: Transport| {
            listing
                .sockets
                .iter()
                .find(|s| s.transport == transport && s.local == local)
                .unwrap_or_else(|| panic!("{local} not listed"))
        };
        let outbound = find(client.local_addr().unwrap(), Transport::Tcp);
        assert_eq!(outbound.remote, server);
        assert_eq!(outbound.state, SocketState::Established);
        assert!(outbound.pids.contains(&me), "{outbound:?}");
        assert!(outbound.is_connection());
        assert!(!outbound.is_inbound(&listing.listeners()));
        let listeners = listing.listeners();
        assert!(listeners.contains(Transport::Tcp, server));
        let accepted = listing
            .sockets
            .iter()
            .find(|s| s.local == server && s.remote == client.local_addr().unwrap())
            .expect("the accepted side is listed");
        assert!(accepted.is_connection() && accepted.is_inbound(&listeners));
        let connected = find(udp.local_addr().unwrap(), Transport::Udp);
        assert_eq!(connected.state, SocketState::Connected);
        assert!(connected.is_connection() && connected.pids.contains(&me));
        let unconnected = find(peer.local_addr().unwrap(), Transport::Udp);
        assert_eq!(unconnected.state, SocketState::Unconnected);
        assert!(!unconnected.is_connection());
        assert!(listing.name(me).is_some_and(|n| !n.is_empty()));
    }
}
