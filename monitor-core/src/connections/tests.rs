//! The decisions over scripted listings: what counts, who is over the limit, which
//! sockets are blocklisted, and through the alert tracker to alerts and ends.

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::*;
use crate::{
    alert::AlertTracker,
    config::{AlertingConfig, ListsConfig},
    model::alert::{AlertEvent, Severity},
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tcp(local: &str, remote: &str, state: SocketState, pids: &[u32]) -> Socket {
    Socket {
        transport: Transport::Tcp,
        local: addr(local),
        remote: addr(remote),
        state,
        pids: pids.to_vec(),
    }
}

fn udp(local: &str, remote: &str, pids: &[u32]) -> Socket {
    let remote = addr(remote);
    Socket {
        transport: Transport::Udp,
        local: addr(local),
        remote,
        state: if remote.port() == 0 {
            SocketState::Unconnected
        } else {
            SocketState::Connected
        },
        pids: pids.to_vec(),
    }
}

fn listing(sockets: Vec<Socket>) -> Listing {
    Listing {
        sockets,
        names: HashMap::from([(100, "curl".into()), (200, "nginx".into())]),
        unreadable_processes: 0,
    }
}

fn lists(block: &[&str], allow: &[&str]) -> Lists {
    Lists::load(&ListsConfig {
        blocklist: block.iter().map(|c| c.parse().unwrap()).collect(),
        allowlist: allow.iter().map(|c| c.parse().unwrap()).collect(),
        ..ListsConfig::default()
    })
    .unwrap()
}

fn config(max: u32) -> ConnectionsConfig {
    ConnectionsConfig {
        max_per_process: NonZeroU32::new(max).unwrap(),
        ..ConnectionsConfig::default()
    }
}

/// `n` outbound TCP connections of `pid` to `remote_ip`, ports from 40000.
fn outbound(pid: u32, remote_ip: &str, n: u16) -> Vec<Socket> {
    (0..n)
        .map(|i| {
            tcp(
                &format!("192.0.2.10:{}", 40_000 + i),
                &format!("{remote_ip}:443"),
                SocketState::Established,
                &[pid],
            )
        })
        .collect()
}

#[test]
fn what_counts_as_a_connection() {
    use crate::model::connection::SocketState::*;
    for state in [Established, SynSent, SynRecv] {
        assert!(tcp("10.0.0.1:5", "10.0.0.2:80", state, &[]).is_connection());
    }
    for state in [
        Listen, FinWait1, FinWait2, CloseWait, Closing, LastAck, TimeWait, Closed,
    ] {
        assert!(
            !tcp("10.0.0.1:5", "10.0.0.2:80", state, &[]).is_connection(),
            "{state:?}"
        );
    }
    assert!(udp("[::1]:5353", "[::1]:53", &[]).is_connection());
    assert!(!udp("0.0.0.0:53", "0.0.0.0:0", &[]).is_connection());
}

#[test]
fn over_the_limit_names_the_process_and_its_count() {
    let mut sockets = outbound(100, "198.51.100.7", 25);
    sockets.extend(outbound(200, "198.51.100.8", 20));
    let found = excessive_connections(&listing(sockets), &config(20));
    assert_eq!(found.len(), 1, "20 is not more than 20: {found:?}");
    let f = &found[0];
    assert_eq!(f.kind, AlertKind::ExcessiveConnections);
    assert_eq!(f.source, AlertSource::Process(100));
    assert_eq!(f.target, "curl[100]");
    assert_eq!(
        (f.value, f.threshold, f.unit),
        (25.0, 20.0, Unit::Connections)
    );
    assert_eq!(
        f.message,
        "curl (pid 100) holds 25 connections (more than 20): 25 tcp, 0 udp, to 1 peers; most to 198.51.100.7 (25)"
    );
    let c = f.connection.as_ref().unwrap();
    assert_eq!((c.pid, c.process.as_deref()), (Some(100), Some("curl")));
    assert_eq!((c.connections, c.socket.is_none()), (25, true));
    assert_eq!(f.severity(), Severity::Low);
}

#[test]
fn listeners_closing_sockets_and_inbound_connections_do_not_count() {
    let mut sockets = outbound(100, "198.51.100.7", 3);
    sockets.push(tcp("0.0.0.0:80", "0.0.0.0:0", SocketState::Listen, &[200]));
    sockets.push(tcp("[::]:443", "[::]:0", SocketState::Listen, &[200]));
    // nginx's accepted connections, on both listeners, IPv4-mapped on the v6 one.
    for i in 0..30u16 {
        let remote = format!("203.0.113.{}:{}", i + 1, 50_000 + i);
        sockets.push(tcp(
            "192.0.2.10:80",
            &remote,
            SocketState::Established,
            &[200],
        ));
        let mapped = format!("[::ffff:203.0.113.{}]:{}", i + 1, 50_000 + i);
        sockets.push(tcp(
            "[::ffff:192.0.2.10]:443",
            &mapped,
            SocketState::Established,
            &[200],
        ));
    }
    // Closing and time-wait sockets of curl.
    for i in 0..30u16 {
        let local = format!("192.0.2.10:{}", 41_000 + i);
        sockets.push(tcp(
            &local,
            "198.51.100.7:443",
            SocketState::CloseWait,
            &[100],
        ));
        sockets.push(tcp(&local, "198.51.100.7:443", SocketState::TimeWait, &[]));
    }
    let listing = listing(sockets);
    assert!(excessive_connections(&listing, &config(5)).is_empty());
    // Counting inbound as predecessor 002 did: nginx is over.
    let all = ConnectionsConfig {
        count_inbound: true,
        ..config(5)
    };
    let found = excessive_connections(&listing, &all);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].source, found[0].value),
        (AlertSource::Process(200), 60.0)
    );
}

#[test]
fn a_shared_socket_counts_for_each_process_and_udp_counts_with_a_peer() {
    let mut sockets: Vec<Socket> = (0..4u16)
        .map(|i| {
            tcp(
                &format!("10.0.0.1:{}", 30_000 + i),
                "10.0.0.9:22",
                SocketState::Established,
                &[100, 300],
            )
        })
        .collect();
    sockets.push(udp("[fd00::1]:40000", "[fd00::53]:53", &[300]));
    sockets.push(udp("0.0.0.0:68", "0.0.0.0:0", &[300]));
    let found = excessive_connections(&listing(sockets), &config(4));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].source, AlertSource::Process(300));
    assert_eq!(found[0].target, "pid 300", "no name known");
    assert!(
        found[0].message.contains("4 tcp, 1 udp"),
        "{}",
        found[0].message
    );
}

#[test]
fn a_blocklisted_peer_names_process_socket_and_entry() {
    let mut sockets = vec![
        tcp(
            "192.0.2.10:50544",
            "203.0.113.7:443",
            SocketState::Established,
            &[100],
        ),
        tcp(
            "192.0.2.10:50550",
            "203.0.113.7:80",
            SocketState::TimeWait,
            &[],
        ),
        tcp(
            "[2001:db8::10]:50600",
            "[2001:db8:bad::1]:443",
            SocketState::SynSent,
            &[200],
        ),
        udp(
            "[::ffff:192.0.2.10]:40000",
            "[::ffff:203.0.113.9]:53",
            &[100],
        ),
        // Not listed, and listed but allowlisted.
        tcp(
            "192.0.2.10:50545",
            "198.51.100.1:443",
            SocketState::Established,
            &[100],
        ),
        tcp(
            "192.0.2.10:50546",
            "203.0.113.77:443",
            SocketState::Established,
            &[100],
        ),
    ];
    sockets.extend(outbound(100, "203.0.113.7", 2));
    let lists = lists(&["203.0.113.0/24", "2001:db8:bad::/48"], &["203.0.113.77"]);
    let found = blocklisted_connections(&listing(sockets), &lists);
    let summary: Vec<(String, String, f64)> = found
        .iter()
        .map(|f| (f.source.to_string(), f.target.to_string(), f.value))
        .collect();
    assert_eq!(
        summary,
        [
            ("203.0.113.7".into(), "unknown process".into(), 1.0),
            ("203.0.113.7".into(), "curl[100]".into(), 3.0),
            ("203.0.113.9".into(), "curl[100]".into(), 1.0),
            ("2001:db8:bad::1".into(), "nginx[200]".into(), 1.0),
        ]
    );
    let curl = &found[1];
    assert_eq!(curl.kind, AlertKind::BlocklistedConnection);
    assert_eq!(curl.severity(), Severity::High);
    let c = curl.connection.as_ref().unwrap();
    let s = c.socket.as_ref().unwrap();
    assert_eq!((c.pid, c.connections), (Some(100), 3));
    assert_eq!(
        (s.local_ip.to_string(), s.local_port),
        ("192.0.2.10".into(), 40_000)
    );
    assert_eq!(
        (s.remote_ip.to_string(), s.remote_port),
        ("203.0.113.7".into(), 443)
    );
    assert_eq!(
        curl.message,
        "curl (pid 100) has a connection to blocklisted 203.0.113.7 (listed as 203.0.113.0/24): tcp 192.0.2.10:40000 → 203.0.113.7:443 (established); 3 sockets to it"
    );
    // IPv4-mapped ends are shown as IPv4.
    let udp = found[2]
        .connection
        .as_ref()
        .unwrap()
        .socket
        .as_ref()
        .unwrap();
    assert_eq!(
        udp.to_string(),
        "udp 192.0.2.10:40000 → 203.0.113.9:53 (connected)"
    );
    // The closed one has no process.
    assert_eq!(found[0].connection.as_ref().unwrap().pid, None);
    assert!(blocklisted_connections(&listing(vec![]), &lists).is_empty());
    assert!(
        blocklisted_connections(
            &listing(outbound(1, "203.0.113.7", 3)),
            &self::lists(&[], &[])
        )
        .is_empty()
    );
}

#[test]
fn through_the_tracker_once_then_ended() {
    let mut tracker = AlertTracker::new(&AlertingConfig {
        clear_intervals: NonZeroU32::new(2).unwrap(),
        ..AlertingConfig::default()
    });
    let at = |s: u64| -> SystemTime { UNIX_EPOCH + Duration::from_secs(s) };
    let lists = lists(&["203.0.113.7"], &[]);
    let mut sockets = outbound(100, "198.51.100.7", 25);
    sockets.extend(outbound(100, "203.0.113.7", 1));
    let busy = listing(sockets);
    let events = tracker.update(evaluate(&busy, &lists, &config(20)), at(0));
    let kinds: Vec<_> = events
        .iter()
        .map(|e| match e {
            AlertEvent::Alert(a) => a.kind.as_str(),
            AlertEvent::AlertEnd(_) => "end",
            AlertEvent::Ban(_) | AlertEvent::Unban(_) => "mitigation",
        })
        .collect();
    assert_eq!(kinds, ["blocklisted_connection", "excessive_connections"]);
    assert!(
        tracker
            .update(evaluate(&busy, &lists, &config(20)), at(10))
            .is_empty()
    );
    let quiet = listing(vec![]);
    assert!(
        tracker
            .update(evaluate(&quiet, &lists, &config(20)), at(20))
            .is_empty()
    );
    let ended = tracker.update(evaluate(&quiet, &lists, &config(20)), at(30));
    assert_eq!(ended.len(), 2);
    let AlertEvent::AlertEnd(end) = &ended[1] else {
        panic!("{ended:?}")
    };
    assert_eq!(end.kind, AlertKind::ExcessiveConnections);
    assert_eq!(end.connection.as_ref().unwrap().pid, Some(100));
    assert_eq!(end.peak_value, 26.0);
}

#[test]
fn labels() {
    let label = |pid, name| Target::process(pid, name).to_string();
    assert_eq!(label(Some(7), Some("sshd")), "sshd[7]");
    assert_eq!(label(Some(7), None), "pid 7");
    assert_eq!(label(None, Some("x")), "unknown process");
}
