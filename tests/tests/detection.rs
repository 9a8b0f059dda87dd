//! Detection end to end: real attack tools (hping3, nmap) and a real HTTP download in a
//! network namespace, the monitor on the host end of the veth. Each attack must raise
//! its alert with the right kind and the right source; normal traffic must raise none.
//!
//! Every test polls at 250 ms and runs the monitor with its default thresholds (the
//! blocklist tests add their list), so what passes here is what a user gets. Each runs
//! twice, once per backend that sees packets: `xdp::<test>` and `pcap::<test>`.
#![cfg(target_os = "linux")]

use std::{
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

use monitor_tests::{
    monitor_process::MonitorProcess,
    netns::TestNet,
    require_tool, send,
    traffic::{self, HttpServer, alerts, wait_for_alert},
};
use serde_json::Value;

const INTERVAL: &str = "250ms";
/// How long an alert may take to come. The detection itself takes one interval; the
/// rest is slack for a loaded two-core machine running floods in parallel.
const ALERT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each flood runs: several intervals, over which every alert is checked.
const FLOOD_TIME: Duration = Duration::from_secs(2);

monitor_tests::on_each_backend!(
    hping3_syn_flood_from_one_source,
    hping3_udp_flood_from_one_source,
    hping3_icmp_flood_from_one_source,
    hping3_rand_source_syn_flood_is_reported_as_many,
    blocklisted_ipv4_source,
    blocklisted_ipv6_network_from_a_list_file,
    nmap_syn_scan,
    nmap_connect_scan,
    large_http_download,
    normal_traffic_raises_no_alert,
);

fn start_monitor(net: &TestNet, backend: &str, extra: &[&str]) -> MonitorProcess {
    // The connection monitor watches the whole host, which a test does not control (a
    // browser on a developer's machine holds more than 20 connections): these tests
    // are about packets; tests/connections.rs covers it.
    let mut args = vec![
        "--iface",
        net.host_if.as_str(),
        "--backend",
        backend,
        "--interval",
        INTERVAL,
        "--no-connections",
    ];
    args.extend_from_slice(extra);
    MonitorProcess::start(&args).expect("start the monitor")
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number `{key}` in {v}"))
}

/// The fields every alert has, with sane values.
fn assert_well_formed(alert: &Value, net: &TestNet) {
    for key in ["severity", "unit", "started_at", "message", "time"] {
        assert!(alert[key].is_string(), "no `{key}` in {alert}");
    }
    assert!(
        number(alert, "value") >= number(alert, "threshold"),
        "value under threshold: {alert}"
    );
    assert_eq!(alert["iface"], net.host_if.as_str(), "{alert}");
}

/// A flood of `hping3 <args> --flood` from the namespace's one address: the alert of
/// `kind` names that address, and every alert of the run names it (a flood explained by
/// one source raises no host-wide `many` alert on top).
fn flood_from_one_source(backend: &str, args: &[&str], kind: &str) {
    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    let mut monitor = start_monitor(&net, backend, &[]);
    let started = Instant::now();
    let flood = traffic::hping3_flood(&net, args, IpAddr::V4(net.host_v4), FLOOD_TIME)
        .expect("start hping3");
    let alert = wait_for_alert(&mut monitor, kind, ALERT_TIMEOUT);
    let latency = started.elapsed();
    flood.finish().expect("hping3 flooded until stopped");
    let alert = alert.unwrap();
    // For the record (the benchmark measures it properly): shown with --nocapture.
    eprintln!(
        "{kind}: alert {} ms after hping3 started",
        latency.as_millis()
    );

    assert_eq!(alert["kind"], kind);
    assert_eq!(alert["source"], net.ns_v4.to_string(), "{alert}");
    assert_eq!(alert["target"], net.host_if.as_str(), "{alert}");
    assert_well_formed(&alert, &net);
    assert!(
        ["medium", "high", "critical"].contains(&alert["severity"].as_str().unwrap()),
        "a protocol flood is at least medium: {alert}"
    );

    let lines = monitor.stop_and_collect().expect("clean stop");
    for other in alerts(&lines) {
        assert_eq!(
            other["source"],
            net.ns_v4.to_string(),
            "an alert of the run names someone else: {other}"
        );
    }
}

fn hping3_syn_flood_from_one_source(backend: &str) {
    flood_from_one_source(backend, &["-S", "-p", "80"], "syn_flood");
}

fn hping3_udp_flood_from_one_source(backend: &str) {
    flood_from_one_source(backend, &["--udp", "-p", "53"], "udp_flood");
}

fn hping3_icmp_flood_from_one_source(backend: &str) {
    flood_from_one_source(backend, &["--icmp"], "icmp_flood");
}

/// `--rand-source`: every packet from another spoofed address, one or so each, so no
/// source crosses its threshold; the host-wide check must still report the flood, as
/// coming from `many`, and no alert may name one of the random addresses. The host end
/// drops the flood after XDP has counted it, so nothing answers the spoofed addresses.
fn hping3_rand_source_syn_flood_is_reported_as_many(backend: &str) {
    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    let mut monitor = start_monitor(&net, backend, &[]);
    let started = Instant::now();
    let flood = traffic::hping3_flood(
        &net,
        &["-S", "-p", "80", "--rand-source"],
        IpAddr::V4(net.host_v4),
        FLOOD_TIME,
    )
    .expect("start hping3");
    let alert = wait_for_alert(&mut monitor, "syn_flood", ALERT_TIMEOUT);
    let latency = started.elapsed();
    flood.finish().expect("hping3 flooded until stopped");
    let alert = alert.unwrap();
    eprintln!(
        "syn_flood from many: alert {} ms after hping3 started",
        latency.as_millis()
    );
    assert_eq!(alert["source"], "many", "{alert}");
    assert_eq!(alert["target"], net.host_if.as_str(), "{alert}");
    assert_well_formed(&alert, &net);
    assert_eq!(alert["threshold"], 10_000.0, "the host-wide SYN threshold");

    // Two intervals after the flood, so that its tail has been through the detectors.
    std::thread::sleep(Duration::from_millis(500));
    let lines = monitor.stop_and_collect().expect("clean stop");
    let named: Vec<_> = alerts(&lines)
        .into_iter()
        .filter(|a| a["source"] != "many")
        .collect();
    assert!(named.is_empty(), "alerts naming one address: {named:?}");
}

/// `--blocklist <the namespace's address>/32` and a few UDP datagrams and pings.
fn blocklisted_ipv4_source(backend: &str) {
    let net = TestNet::new().expect("test network");
    let listed = format!("{}/32", net.ns_v4);
    let mut monitor = start_monitor(&net, backend, &["--blocklist", &listed]);
    let host = net.host_v4;
    send::in_netns(&net.ns, move || {
        send::udp((host, 7_000).into(), 3, 20)?;
        send::icmp_echo(host, 3, 56)
    })
    .expect("send from the namespace");

    let alert = wait_for_alert(&mut monitor, "blocklisted", ALERT_TIMEOUT).unwrap();
    assert_eq!(alert["source"], net.ns_v4.to_string(), "{alert}");
    assert_eq!(alert["severity"], "high", "{alert}");
    assert_eq!(alert["unit"], "packets", "{alert}");
    assert_well_formed(&alert, &net);
    monitor.stop_and_collect().expect("clean stop");
}

/// An IPv6 network in a blocklist file named by a configuration file, and IPv6 UDP from
/// an address inside it.
fn blocklisted_ipv6_network_from_a_list_file(backend: &str) {
    let net = TestNet::new().expect("test network");
    let segments = net.ns_v6.segments();
    let network = Ipv6Addr::new(segments[0], segments[1], segments[2], 0, 0, 0, 0, 0);
    let dir = std::env::temp_dir().join(format!("monitor-detect-{}", net.ns));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.txt"),
        format!("# the test namespace\n{network}/48  # all of it\n"),
    )
    .unwrap();
    let config = dir.join("monitor.toml");
    std::fs::write(&config, "[lists]\nblocklist_files = [\"bad.txt\"]\n").unwrap();

    let mut monitor = start_monitor(&net, backend, &["--config", config.to_str().unwrap()]);
    let host = net.host_v6;
    send::in_netns(&net.ns, move || {
        send::udp((IpAddr::V6(host), 7_000).into(), 3, 20)
    })
    .expect("send from the namespace");

    // The /48 holds the host's own address too, so traffic *to* a listed address is
    // reported as well; the alert wanted here is the one naming the sender.
    let sender = net.ns_v6.to_string();
    let alert =
        traffic::wait_for_alert_from(&mut monitor, "blocklisted", Some(&sender), ALERT_TIMEOUT);
    let _ = std::fs::remove_dir_all(&dir);
    let alert = alert.unwrap();
    assert_eq!(alert["source"], sender, "{alert}");
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("listed as {network}/48")),
        "{message}"
    );
    assert_well_formed(&alert, &net);
    monitor.stop_and_collect().expect("clean stop");
}

/// nmap against the host end; the alert needs the kernel's per-source estimates of
/// distinct ports (default threshold: 100 ports, or 20 hosts, in 60 s).
fn nmap_scan(backend: &str, scan: &str) {
    require_tool("nmap");
    let net = TestNet::new().expect("test network");
    let mut monitor = start_monitor(&net, backend, &[]);
    traffic::nmap(
        &net,
        &[scan, "-p", "1-1000", "-T4"],
        IpAddr::V4(net.host_v4),
    )
    .expect("nmap ran");
    let alert = wait_for_alert(&mut monitor, "port_scan", ALERT_TIMEOUT).unwrap();
    assert_eq!(alert["source"], net.ns_v4.to_string(), "{alert}");
    assert_eq!(alert["unit"], "ports", "{alert}");
    assert_eq!(alert["threshold"], 100.0, "{alert}");
    // 1,000 ports tried; the kernel's count is an estimate (bounded memory per source).
    assert!(number(&alert, "value") <= 1_200.0, "{alert}");
    assert_well_formed(&alert, &net);
    monitor.stop_and_collect().expect("clean stop");
}

fn nmap_syn_scan(backend: &str) {
    nmap_scan(backend, "-sS");
}

fn nmap_connect_scan(backend: &str) {
    nmap_scan(backend, "-sT");
}

/// 25 MB over one HTTP connection from a server in the namespace: a large download
/// (default threshold 20 MB), its source the server.
fn large_http_download(backend: &str) {
    const SIZE: u64 = 25_000_000;
    let net = TestNet::new().expect("test network");
    let mut monitor = start_monitor(&net, backend, &[]);
    let server = HttpServer::start(&net, IpAddr::V4(net.ns_v4), SIZE).expect("HTTP server");
    let server_port = server.addr.port();
    let resent_before = retransmitted_segments(&net);
    assert_eq!(traffic::http_get(server.addr).expect("download"), SIZE);
    server.stop().expect("the server served cleanly");
    let resent = retransmitted_segments(&net) - resent_before;

    let alert = wait_for_alert(&mut monitor, "large_download", ALERT_TIMEOUT).unwrap();
    assert_eq!(alert["source"], net.ns_v4.to_string(), "{alert}");
    assert_eq!(alert["severity"], "low", "{alert}");
    assert_eq!(alert["threshold"], 20_000_000.0, "{alert}");
    // Payload bytes as they arrived on the wire by the poll that raised the alert: at
    // least the threshold, at most the body, the response headers and the segments the
    // server retransmitted (under load it resends some; each is at most one MSS on this
    // 1500-byte link). Counting headers as payload would exceed it.
    let value = number(&alert, "value");
    assert!(value >= 20_000_000.0, "{alert}");
    let ceiling = SIZE as f64 * 1.001 + resent as f64 * 1448.0;
    assert!(
        value <= ceiling,
        "{alert} (ceiling {ceiling}: {resent} segments resent)"
    );
    assert_well_formed(&alert, &net);
    let flow = &alert["flow"];
    assert_eq!(flow["protocol"], "tcp", "{alert}");
    assert_eq!(flow["src"], net.ns_v4.to_string(), "{alert}");
    assert_eq!(flow["src_port"], server_port, "{alert}");
    assert_eq!(flow["dst"], net.host_v4.to_string(), "{alert}");
    monitor.stop_and_collect().expect("clean stop");
}

/// TCP segments the namespace's stack has retransmitted (`RetransSegs` of its
/// /proc/net/snmp).
fn retransmitted_segments(net: &TestNet) -> u64 {
    let out = net
        .command("cat")
        .arg("/proc/net/snmp")
        .output()
        .expect("cat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (
        tcp.next().expect("Tcp: names"),
        tcp.next().expect("Tcp: values"),
    );
    let column = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .expect("RetransSegs");
    values
        .split_whitespace()
        .nth(column)
        .expect("a value")
        .parse()
        .expect("a number")
}

/// What a normal host sees: a 5 MB download, a few pings, a short SYN burst well under
/// the thresholds. Not one alert over the whole run. The namespace's addresses are
/// private, so burst checks are turned on for them: the download (which lands in one or
/// two 250 ms intervals) must not read as a burst either.
fn normal_traffic_raises_no_alert(backend: &str) {
    const SIZE: u64 = 5_000_000;

    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    let monitor = start_monitor(&net, backend, &["--exclude-private-from-burst", "false"]);
    let host = IpAddr::V4(net.host_v4);

    let server = HttpServer::start(&net, IpAddr::V4(net.ns_v4), SIZE).expect("HTTP server");
    assert_eq!(traffic::http_get(server.addr).expect("download"), SIZE);
    server.stop().expect("the server served cleanly");
    // Five pings, 100 ms apart.
    traffic::hping3(&net, &["--icmp", "-c", "5", "-i", "u100000"], host).expect("pings");
    // 100 SYNs to a closed port, at 50 a second: under the 500 SYN/s threshold, and
    // under the 100 SYN/s from which unanswered SYNs (the SYN:SYN-ACK ratio) count.
    traffic::hping3(&net, &["-S", "-p", "80", "-c", "100", "-i", "u20000"], host)
        .expect("SYN burst");
    // Two intervals, so that the last of it has been through the detectors.
    std::thread::sleep(Duration::from_millis(500));

    let lines = monitor.stop_and_collect().expect("clean stop");
    let raised: Vec<_> = lines
        .iter()
        .filter(|v| v["type"] == "alert" || v["type"] == "alert_end")
        .collect();
    assert!(raised.is_empty(), "normal traffic raised: {raised:?}");
    // And the traffic did arrive: the quiet is not for lack of it.
    let totals = &lines.last().unwrap()["totals"];
    assert!(number(totals, "syn") >= 100.0, "{totals}");
    assert!(number(totals, "icmp") >= 5.0, "{totals}");
    assert!(number(totals, "bytes") >= SIZE as f64, "{totals}");
}
