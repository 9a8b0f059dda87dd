//! Faults, end to end: a webhook endpoint that is down and comes back, a capture
//! directory that cannot be created, the monitor killed with SIGKILL, and a second
//! monitor on an interface that already has one.
#![cfg(target_os = "linux")]

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use monitor_tests::{
    http_server::TestServer,
    monitor_process::{MonitorProcess, binary},
    netns::TestNet,
    require_kernel, send,
};
use serde_json::Value;

/// A port nothing listens on, so each connection attempt is exactly one SYN.
const CLOSED_PORT: u16 = 9;

/// SYNs from the namespace's IPv4 and IPv6 addresses: two sources, two alerts at a
/// threshold of 5 SYN/s.
fn syns_from_two_sources(net: &TestNet, count: usize) {
    let (v4, v6) = (IpAddr::V4(net.host_v4), IpAddr::V6(net.host_v6));
    send::in_netns(&net.ns, move || {
        send::tcp_syns(SocketAddr::new(v4, CLOSED_PORT), count)?;
        send::tcp_syns(SocketAddr::new(v6, CLOSED_PORT), count)
    })
    .expect("send SYNs");
}

/// The next `n` alert lines' (kind, source).
fn next_alerts(monitor: &mut MonitorProcess, n: usize) -> BTreeSet<(String, String)> {
    (0..n)
        .map(|_| {
            let alert = monitor
                .wait_for("alert", Duration::from_secs(10))
                .expect("an alert");
            (
                alert["kind"].as_str().unwrap().to_owned(),
                alert["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The endpoint refuses connections while two alerts are raised, for longer than the
/// configured retries last; when it listens again, both alerts arrive.
#[test]
fn a_webhook_endpoint_down_then_back_gets_every_alert() {
    require_kernel!();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the test server");
    // A loopback port that refuses connections until the server starts on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let endpoint = SocketAddr::from(([127, 0, 0, 1], port));
    let net = TestNet::new().expect("test network");
    let mut monitor = MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--interval",
        "250ms",
        "--source-syn-per-sec",
        "5",
        // Alerts from packets only: the connection monitor watches the whole host.
        "--no-connections",
        "--webhook",
        &format!("generic=http://{endpoint}/hook"),
        "--delivery-retries",
        "1",
        "--delivery-backoff",
        "100ms",
    ])
    .expect("start the monitor");

    syns_from_two_sources(&net, 300);
    let raised = next_alerts(&mut monitor, 2);
    assert_eq!(raised.len(), 2, "{raised:?}");
    // Down for 2 s: attempts at about 0, 0.1 and 0.3 s (the one retry), then on.
    std::thread::sleep(Duration::from_secs(2));
    let server = runtime.block_on(TestServer::start_at(endpoint, Vec::new()));
    let requests = runtime.block_on(server.wait_for(2, Duration::from_secs(15)));
    let delivered: BTreeSet<(String, String)> = requests
        .iter()
        .map(monitor_tests::http_server::Recorded::json)
        .filter(|record| record["type"] == "alert")
        .map(|record| {
            (
                record["kind"].as_str().unwrap().to_owned(),
                record["remote_ip"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(delivered, raised);
    let log = monitor.stderr_so_far().join("\n");
    assert!(
        log.contains("still retrying"),
        "the outage outlasted the retries: {log}"
    );
    assert!(!log.contains("failed to deliver"), "{log}");
    monitor.interrupt().expect("a clean stop");
}

/// Every capture fails (the directory cannot be created under a regular file, even by
/// root): each is reported on stdout, the log says so once, and the counting goes on.
#[test]
fn an_unwritable_capture_directory_is_logged_once_and_monitoring_goes_on() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let blocker = std::env::temp_dir().join(format!("monitor-not-a-dir-{}", net.ns));
    std::fs::write(&blocker, b"").unwrap();
    let dir = blocker.join("captures");
    let mut monitor = MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--interval",
        "250ms",
        "--source-syn-per-sec",
        "5",
        "--no-connections",
        "--pcap-dir",
        dir.to_str().unwrap(),
    ])
    .expect("start the monitor");
    syns_from_two_sources(&net, 300);
    for _ in 0..2 {
        let capture = monitor
            .wait_for("capture", Duration::from_secs(10))
            .expect("each failed capture is reported");
        let error = capture["error"].as_str().expect("an error");
        assert!(error.contains("cannot create capture directory"), "{error}");
        assert_eq!(capture["packets"], 0);
    }
    // Still polling after the failures, and the totals add up at the end.
    monitor.wait_for("stats", Duration::from_secs(5)).unwrap();
    let v4 = IpAddr::V4(net.host_v4);
    send::in_netns(&net.ns, move || {
        send::tcp_syns(SocketAddr::new(v4, CLOSED_PORT), 50)
    })
    .expect("send more SYNs");
    let logged: Vec<String> = monitor
        .stderr_so_far()
        .iter()
        .filter(|l| l.contains("cannot create capture directory"))
        .cloned()
        .collect();
    let last = monitor.interrupt().expect("a clean stop");
    assert_eq!(last["totals"]["syn"], 650, "{last}");
    assert_eq!(logged.len(), 1, "logged once: {logged:?}");
    let _ = std::fs::remove_file(&blocker);
}

/// SIGKILL gives the monitor no chance to detach: the kernel must, because the XDP
/// program and the egress classifier hang on BPF links the process owns.
#[test]
fn a_killed_monitor_leaves_nothing_attached() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    for mode in ["skb", "native"] {
        let mut monitor =
            MonitorProcess::start(&["--iface", &net.host_if, "--xdp-mode", mode]).unwrap();
        monitor.wait_for("stats", Duration::from_secs(5)).unwrap();
        assert!(net.host_has_xdp().unwrap(), "{mode}: attached");
        monitor.kill().unwrap();
        assert!(
            !net.host_has_xdp().unwrap(),
            "{mode}: the XDP link died with the process"
        );
        assert_eq!(
            net.host_egress_programs().unwrap(),
            0,
            "{mode}: the egress link died with the process"
        );
    }
}

/// The second monitor stops with one line that says why; the first one goes on
/// counting as if nothing happened.
#[test]
fn a_second_monitor_on_the_same_interface_gets_a_clear_error() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let first = MonitorProcess::start(&["--iface", &net.host_if, "--interval", "250ms"]).unwrap();
    let out = std::process::Command::new(binary())
        .args(["--iface", &net.host_if, "--duration", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains(&format!(
            "`{}` already has an XDP program attached",
            net.host_if
        )),
        "{stderr}"
    );
    let v4 = IpAddr::V4(net.host_v4);
    send::in_netns(&net.ns, move || {
        send::udp(SocketAddr::new(v4, 7_000), 25, 10)
    })
    .expect("send UDP");
    let last: Value = first.interrupt().unwrap();
    assert_eq!(last["totals"]["udp"], 25, "{last}");
}
