//! The connection monitor: the host's own TCP and UDP sockets (IPv4 and IPv6) with the
//! processes that hold them, as predecessor 002 watched them. Packet counters cannot
//! see processes; this can.
//!
//! Every `connections.interval` a background thread lists the sockets (`monitor::sockets`:
//! `/proc` on Linux, `netstat2` and `sysinfo` elsewhere) and hands the `Listing` to
//! the polling loop. The decisions here are pure functions of that listing
//! ([`evaluate`]):
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
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use crate::{
    config::ConnectionsConfig,
    detect::Lists,
    model::{
        alert::{AlertKind, AlertSource, Finding, Target, Unit},
        connection::{ConnectionDetails, Listing, Socket, SocketDetails, SocketState, Transport},
        format::thousands,
    },
};

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
                target: Target::process(pid, name),
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
                target: Target::process(Some(pid), name),
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
#[expect(
    clippy::float_cmp,
    reason = "the values asserted are exact in binary (whole counts over exact intervals); a tolerance would loosen the tests"
)]
mod tests;
