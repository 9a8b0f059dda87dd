//! `--packets` and `--filter` end to end: the monitor attached to a veth whose peer
//! sends known traffic. Each test runs once per backend that sees packets
//! (`xdp::<test>`: the XDP program's filter and packet-log ring buffer; `pcap::<test>`:
//! the same rules applied to what libpcap captures), with the same exact counts; the
//! interface-counter backend refuses both options.
#![cfg(target_os = "linux")]

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use monitor_tests::{
    netns::TestNet, require_kernel, require_tool, send, terminal::PlainMonitor, traffic,
};

monitor_tests::on_each_backend!(
    light_traffic_prints_one_line_per_packet_with_its_fields,
    the_filter_narrows_the_lines_and_the_stats,
    a_flood_stays_within_the_cap_and_the_skipped_lines_are_reported,
);

const UDP: usize = 20;
const UDP_PAYLOAD: usize = 100;
/// Ethernet + IPv4 + UDP headers + payload.
const UDP_FRAME: usize = 14 + 20 + 8 + UDP_PAYLOAD;
const SYN: usize = 10;
const ECHO: usize = 5;
const CLOSED_PORT: u16 = 9;

/// 20 UDP datagrams to port 7000, 10 SYNs to a closed port, 5 echo requests, and 7
/// UDP datagrams to port 7001.
fn send_mixed(net: &TestNet) {
    let IpAddr::V4(host) = IpAddr::V4(net.host_v4) else {
        unreachable!()
    };
    send::in_netns(&net.ns, move || {
        send::udp(SocketAddr::new(host.into(), 7_000), UDP, UDP_PAYLOAD)?;
        send::tcp_syns(SocketAddr::new(host.into(), CLOSED_PORT), SYN)?;
        send::icmp_echo(host, ECHO, 56)?;
        send::udp(SocketAddr::new(host.into(), 7_001), 7, UDP_PAYLOAD)
    })
    .expect("send traffic from the namespace");
}

fn packet_lines(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains(" -> ")).collect()
}

/// `  packets 20 (2,840 bytes)` and `  tcp 0  udp 20  icmp 0 ...` from the totals.
fn total(lines: &[String], name: &str) -> u64 {
    let block = lines
        .iter()
        .skip_while(|l| !l.starts_with("final totals"))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = block.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == name)
        .unwrap_or_else(|| panic!("no `{name}` in the final totals: {block}"));
    words[at + 1]
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("`{name}` is not followed by a number: {block}"))
}

fn light_traffic_prints_one_line_per_packet_with_its_fields(backend: &str) {
    let net = TestNet::new().expect("test network");
    let monitor = PlainMonitor::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        backend,
        "--interval",
        "200ms",
        "--packets",
    ])
    .expect("start");
    send_mixed(&net);
    std::thread::sleep(Duration::from_millis(600));
    let lines = monitor.stop().expect("stop");
    let packets = packet_lines(&lines);
    let (ns, host) = (net.ns_v4.to_string(), net.host_v4.to_string());
    let udp: Vec<_> = packets
        .iter()
        .filter(|l| l.contains(&format!("-> {host}:7000 {UDP_FRAME} bytes")))
        .collect();
    assert_eq!(udp.len(), UDP, "{packets:#?}");
    for line in &udp {
        assert!(line.contains(&format!(" UDP  {ns}:")), "{line}");
        // HH:MM:SS.mmm first.
        let clock = &line[..12];
        assert!(
            clock.as_bytes()[2] == b':' && clock.as_bytes()[8] == b'.',
            "{line}"
        );
    }
    let syns = packets
        .iter()
        .filter(|l| l.contains(&format!("-> {host}:{CLOSED_PORT} ")) && l.ends_with(" [S]"))
        .count();
    assert_eq!(syns, SYN, "{packets:#?}");
    let echoes = packets
        .iter()
        .filter(|l| l.contains(&format!(" ICMP {ns} -> {host} 98 bytes")))
        .count();
    assert_eq!(echoes, ECHO, "{packets:#?}");
    assert_eq!(
        packets.len(),
        UDP + SYN + ECHO + 7,
        "nothing else: {packets:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "packet log: 0 lines skipped in all (rate cap 0, kernel cap or full buffers 0)"
        )),
        "{lines:#?}"
    );
    assert_eq!(total(&lines, "packets"), (UDP + SYN + ECHO + 7) as u64);
}

fn the_filter_narrows_the_lines_and_the_stats(backend: &str) {
    let net = TestNet::new().expect("test network");
    let monitor = PlainMonitor::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        backend,
        "--interval",
        "200ms",
        "--packets",
        "--filter",
        "udp and dst port 7000",
    ])
    .expect("start");
    send_mixed(&net);
    std::thread::sleep(Duration::from_millis(600));
    let lines = monitor.stop().expect("stop");
    let packets = packet_lines(&lines);
    assert_eq!(packets.len(), UDP, "{packets:#?}");
    assert!(packets.iter().all(|l| l.contains(":7000 ")), "{packets:#?}");
    assert_eq!(total(&lines, "packets"), UDP as u64, "{lines:#?}");
    assert_eq!(total(&lines, "udp"), UDP as u64);
    assert_eq!(total(&lines, "tcp"), 0);
    assert_eq!(total(&lines, "icmp"), 0);
    assert_eq!(total(&lines, "syn"), 0);
    // The totals' bytes are the matching frames' only.
    let bytes_line = lines
        .iter()
        .find(|l| l.trim_start().starts_with("packets "))
        .expect("packets line");
    assert!(
        bytes_line
            .replace(',', "")
            .contains(&format!("({} bytes)", UDP * UDP_FRAME)),
        "{bytes_line}"
    );
}

fn a_flood_stays_within_the_cap_and_the_skipped_lines_are_reported(backend: &str) {
    const CAP: usize = 50;

    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    let monitor = PlainMonitor::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        backend,
        "--interval",
        "500ms",
        "--packets",
        "--packets-rate",
        &CAP.to_string(),
        // No alerts in the output for this test.
        "--host-pps",
        "100000000",
        "--source-pps",
        "100000000",
        "--source-udp-pps",
        "100000000",
        "--host-udp-pps",
        "100000000",
    ])
    .expect("start");
    let flood = traffic::hping3_flood(
        &net,
        &["-2", "-p", "7000", "-d", "64"],
        IpAddr::V4(net.host_v4),
        Duration::from_secs(7),
    )
    .expect("start the flood");
    flood.finish().expect("flood");
    std::thread::sleep(Duration::from_millis(500));
    let lines = monitor.stop().expect("stop");
    let packets = packet_lines(&lines);
    let mut per_second: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &packets {
        *per_second.entry(&line[..8]).or_default() += 1;
    }
    assert!(
        per_second.values().all(|&n| n <= CAP),
        "over the cap: {per_second:?}"
    );
    assert!(
        per_second.values().filter(|&&n| n == CAP).count() >= 3,
        "the flood fills the cap every second: {per_second:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("packet log: ") && l.contains("skipped so far")),
        "a periodic skipped report: {:#?}",
        lines
            .iter()
            .filter(|l| !l.contains(" -> "))
            .collect::<Vec<_>>()
    );
    let end = lines
        .iter()
        .find(|l| l.starts_with("packet log: ") && l.contains("skipped in all"))
        .expect("a final skipped report");
    let skipped: u64 = end
        .split_whitespace()
        .nth(2)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    let received = total(&lines, "packets");
    assert_eq!(
        skipped + packets.len() as u64,
        received,
        "every packet is either printed or counted as skipped: {end}"
    );
}

/// The interface counters see no packets: asked to filter or log them, the monitor
/// says so in one line instead of running without what was asked for.
#[test]
fn the_interface_counters_refuse_the_filter_and_the_packet_log() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    for (option, args) in [
        ("--filter", &["--filter", "udp"][..]),
        ("--packets", &["--packets"][..]),
    ] {
        let out = std::process::Command::new(monitor_tests::monitor_process::binary())
            .args(["--iface", &net.host_if, "--backend", "ifstats"])
            .args(args)
            .args(["--duration", "1s"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors,
            [format!(
                "error: {option} needs a backend that sees each packet (xdp or pcap); the \
                 ifstats backend reads only the interface's counters"
            )],
            "{stderr}"
        );
    }
}
