//! The monitor binary attached to the host end of a veth pair, with exact traffic sent
//! from a network namespace: the `final` totals must match what was sent, exactly.
#![cfg(target_os = "linux")]

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use monitor_tests::{
    monitor_process::{MonitorProcess, binary},
    netns::TestNet,
    require_kernel, send,
};
use serde_json::Value;

const UDP4: u64 = 50;
const SYN: u64 = 40;
const ECHO: u64 = 30;
const UDP6: u64 = 20;
const UDP_PAYLOAD: usize = 100;
const ECHO_PAYLOAD: usize = 56;
/// A port nothing listens on, so each connection attempt is exactly one SYN.
const CLOSED_PORT: u16 = 9;

fn send_known_traffic(net: &TestNet) {
    let (v4, v6) = (IpAddr::V4(net.host_v4), IpAddr::V6(net.host_v6));
    send::in_netns(&net.ns, move || {
        send::udp(SocketAddr::new(v4, 7_000), UDP4 as usize, UDP_PAYLOAD)?;
        send::tcp_syns(SocketAddr::new(v4, CLOSED_PORT), SYN as usize)?;
        let IpAddr::V4(dst) = v4 else { unreachable!() };
        send::icmp_echo(dst, ECHO as usize, ECHO_PAYLOAD)?;
        send::udp(SocketAddr::new(v6, 7_000), UDP6 as usize, UDP_PAYLOAD)
    })
    .expect("send test traffic from the namespace");
}

fn assert_exact_totals(last: &Value, net: &TestNet) {
    let t = &last["totals"];
    let n = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("no totals.{k} in {last}"))
    };
    assert_eq!(n("packets"), UDP4 + SYN + ECHO + UDP6, "{t}");
    assert_eq!(n("udp"), UDP4 + UDP6);
    assert_eq!(n("tcp"), SYN);
    assert_eq!(n("syn"), SYN);
    assert_eq!(n("icmp"), ECHO);
    assert_eq!(n("ipv4"), UDP4 + SYN + ECHO);
    assert_eq!(n("ipv6"), UDP6);
    assert_eq!((n("other"), n("non_ip"), n("malformed")), (0, 0, 0));
    assert_eq!(
        (n("syn_ack"), n("rst"), n("fin"), n("fragments")),
        (0, 0, 0, 0)
    );
    let udp4_frame = 14 + 20 + 8 + UDP_PAYLOAD as u64;
    let udp6_frame = 14 + 40 + 8 + UDP_PAYLOAD as u64;
    assert_eq!(n("udp_bytes"), UDP4 * udp4_frame + UDP6 * udp6_frame);
    assert_eq!(n("icmp_bytes"), ECHO * (14 + 20 + 8 + ECHO_PAYLOAD as u64));
    assert_eq!(
        n("bytes"),
        n("udp_bytes") + n("icmp_bytes") + n("tcp_bytes")
    );
    let _ = net;
}

#[test]
fn final_totals_match_the_traffic_sent_exactly() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let mut monitor =
        MonitorProcess::start(&["--iface", &net.host_if, "--interval", "200ms"]).expect("start");
    assert!(net.host_has_xdp().unwrap(), "XDP attached while running");
    send_known_traffic(&net);

    // A stats line after the traffic carries the same cumulative totals and names the
    // namespace as the top source.
    let stats = loop {
        let s = monitor.wait_for("stats", Duration::from_secs(10)).unwrap();
        if s["totals"]["packets"].as_u64() == Some(UDP4 + SYN + ECHO + UDP6) {
            break s;
        }
    };
    assert_exact_totals(&stats, &net);

    let last = monitor.interrupt().expect("clean stop on SIGINT");
    assert_exact_totals(&last, &net);
    assert!(!net.host_has_xdp().unwrap(), "SIGINT detaches the program");
}

#[test]
fn top_sources_name_the_sender_with_its_rates() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    // A long interval so that all the traffic lands in one interval.
    let mut monitor =
        MonitorProcess::start(&["--iface", &net.host_if, "--interval", "2s"]).expect("start");
    send_known_traffic(&net);
    let stats = loop {
        let s = monitor.wait_for("stats", Duration::from_secs(10)).unwrap();
        if !s["top_sources"].as_array().unwrap().is_empty() {
            break s;
        }
    };
    let top = stats["top_sources"].as_array().unwrap();
    let v4 = top
        .iter()
        .find(|s| s["ip"] == net.ns_v4.to_string())
        .unwrap_or_else(|| panic!("{} not among {top:?}", net.ns_v4));
    let v6 = top
        .iter()
        .find(|s| s["ip"] == net.ns_v6.to_string())
        .expect("IPv6 sender listed");
    assert_eq!(v4["packets"], UDP4 + SYN + ECHO);
    assert_eq!(v6["packets"], UDP6);
    // Rates are per second over the interval the stats line covers.
    let secs = stats["interval_secs"].as_f64().unwrap();
    let pps = v4["pps"].as_f64().unwrap();
    let expected = (UDP4 + SYN + ECHO) as f64 / secs;
    assert!(
        (pps - expected).abs() < 0.1,
        "pps {pps}, expected {expected}"
    );
    monitor.interrupt().unwrap();
}

#[test]
fn duration_stops_cleanly_and_sigterm_too() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let monitor = MonitorProcess::start(&["--iface", &net.host_if, "--duration", "1s"]).unwrap();
    let last = monitor.wait_final(Duration::from_secs(10)).unwrap();
    assert_eq!(last["totals"]["packets"], 0, "nothing was sent");
    assert!(last["duration_secs"].as_f64().unwrap() >= 1.0);

    let mut monitor = MonitorProcess::start(&["--iface", &net.host_if]).unwrap();
    monitor.signal(libc::SIGTERM);
    monitor.wait_for("final", Duration::from_secs(10)).unwrap();
    assert!(!net.host_has_xdp().unwrap());
}

#[test]
fn a_missing_interface_is_named_with_the_ones_that_exist() {
    // No kernel needed: the check happens before anything is loaded.
    let out = std::process::Command::new(binary())
        .args(["--iface", "nosuchif0", "--duration", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("interface `nosuchif0` not found"),
        "{stderr}"
    );
    assert!(lines[0].contains("lo"), "lists the interfaces: {stderr}");
}

#[test]
fn an_interval_below_100ms_is_refused() {
    let out = std::process::Command::new(binary())
        .args(["--iface", "lo", "--interval", "50ms"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("below the 100ms minimum"));
}
