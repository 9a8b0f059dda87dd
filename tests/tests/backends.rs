//! The backends side by side on the same veth and the same crafted traffic: the XDP
//! program, libpcap and the interface's own counters, three monitors at once. XDP and
//! pcap decode with the same rules and count into the same tables, so their totals per
//! protocol and per source must be equal, exactly (at a rate libpcap drops nothing of:
//! checked); the interface counters agree on packets and bytes within what the kernel
//! itself sends.
#![cfg(target_os = "linux")]

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use monitor_tests::{
    monitor_process::MonitorProcess, netns::TestNet, require_kernel, require_tool, send, traffic,
};
use serde_json::Value;

const UDP4: u64 = 60;
const SYN: u64 = 40;
const ECHO: u64 = 30;
const UDP6: u64 = 25;
const SENT: u64 = UDP4 + SYN + ECHO + UDP6;
/// A port nothing listens on, so each connection attempt is exactly one SYN.
const CLOSED_PORT: u16 = 9;

fn send_known_traffic(net: &TestNet) {
    let (v4, v6) = (net.host_v4, IpAddr::V6(net.host_v6));
    send::in_netns(&net.ns, move || {
        send::udp(SocketAddr::new(IpAddr::V4(v4), 7_000), UDP4 as usize, 300)?;
        send::tcp_syns(SocketAddr::new(IpAddr::V4(v4), CLOSED_PORT), SYN as usize)?;
        send::icmp_echo(v4, ECHO as usize, 56)?;
        send::udp(SocketAddr::new(v6, 7_000), UDP6 as usize, 1_200)
    })
    .expect("send test traffic from the namespace");
}

fn start(net: &TestNet, backend: &str) -> MonitorProcess {
    MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        backend,
        "--interval",
        "200ms",
        "--top",
        "20",
        "--no-connections",
    ])
    .unwrap_or_else(|e| panic!("start the monitor with --backend {backend}: {e:#}"))
}

/// Waits until the monitor's totals reach `packets`, then stops it; returns every
/// line it printed.
fn run_until(mut monitor: MonitorProcess, packets: u64) -> Vec<Value> {
    loop {
        let stats = monitor
            .wait_for("stats", Duration::from_secs(20))
            .expect("a stats line");
        if stats["totals"]["packets"].as_u64() >= Some(packets) {
            break;
        }
    }
    monitor.stop_and_collect().expect("clean stop")
}

/// Per source, its cumulative packets and bytes: the largest figures any stats line
/// gave (they only grow).
fn per_source(lines: &[Value]) -> BTreeMap<String, (u64, u64)> {
    let mut sources = BTreeMap::new();
    for line in lines.iter().filter(|l| l["type"] == "stats") {
        for s in line["top_sources"].as_array().unwrap() {
            let (packets, bytes) = (s["packets"].as_u64().unwrap(), s["bytes"].as_u64().unwrap());
            let entry = sources
                .entry(s["ip"].as_str().unwrap().to_owned())
                .or_insert((0, 0));
            *entry = (*entry).max((packets, bytes));
        }
    }
    sources
}

fn final_totals(lines: &[Value]) -> &Value {
    let last = lines.last().expect("lines");
    assert_eq!(last["type"], "final", "{last}");
    &last["totals"]
}

#[test]
fn xdp_pcap_and_interface_counters_count_the_same_traffic() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let xdp = start(&net, "xdp");
    let pcap = start(&net, "pcap");
    let ifstats = start(&net, "ifstats");
    send_known_traffic(&net);
    let xdp = run_until(xdp, SENT);
    let pcap = run_until(pcap, SENT);
    let ifstats = run_until(ifstats, SENT);

    let (xdp_totals, pcap_totals) = (final_totals(&xdp), final_totals(&pcap));
    // Exactly what was sent, by protocol and family, on XDP...
    let n = |t: &Value, k: &str| t[k].as_u64().unwrap_or_else(|| panic!("no {k} in {t}"));
    assert_eq!(n(xdp_totals, "packets"), SENT, "{xdp_totals}");
    assert_eq!(n(xdp_totals, "udp"), UDP4 + UDP6);
    assert_eq!((n(xdp_totals, "tcp"), n(xdp_totals, "syn")), (SYN, SYN));
    assert_eq!(n(xdp_totals, "icmp"), ECHO);
    assert_eq!(n(xdp_totals, "ipv6"), UDP6);
    // ...and every total, bytes included, the same on pcap.
    assert_eq!(
        pcap_totals, xdp_totals,
        "pcap {pcap_totals}\nxdp  {xdp_totals}"
    );

    // The same sources with the same packets and bytes.
    let (xdp_sources, pcap_sources) = (per_source(&xdp), per_source(&pcap));
    let sender = |ip: IpAddr| xdp_sources.get(&ip.to_string()).copied();
    assert_eq!(
        sender(IpAddr::V4(net.ns_v4)).map(|(p, _)| p),
        Some(UDP4 + SYN + ECHO)
    );
    assert_eq!(sender(IpAddr::V6(net.ns_v6)).map(|(p, _)| p), Some(UDP6));
    assert_eq!(pcap_sources, xdp_sources);

    // libpcap lost nothing, and said so on every stats line.
    let pcap_stats: Vec<&Value> = pcap.iter().filter(|l| l["type"] == "stats").collect();
    assert!(!pcap_stats.is_empty());
    for line in &pcap_stats {
        let drops = &line["capture_drops"];
        assert_eq!(drops["dropped"], 0, "{line}");
        assert_eq!(drops["if_dropped"], 0, "{line}");
    }
    assert!(xdp.iter().all(|l| l.get("capture_drops").is_none()));

    // The interface's counters: the same packets and bytes, give or take what the
    // kernel itself received meanwhile (none is expected on this quiet veth).
    let if_totals = final_totals(&ifstats);
    let (if_packets, if_bytes) = (n(if_totals, "packets"), n(if_totals, "bytes"));
    let (packets, bytes) = (n(xdp_totals, "packets"), n(xdp_totals, "bytes"));
    assert!(
        if_packets.abs_diff(packets) <= 3,
        "ifstats {if_packets} packets, xdp {packets}"
    );
    // A veth's driver, like loopback's, counts bytes without the 14-byte Ethernet
    // header that XDP's whole frames include (most NIC drivers count it).
    assert!(
        (if_bytes + 14 * if_packets).abs_diff(bytes) <= 3 * 1_500,
        "ifstats {if_bytes} bytes in {if_packets} packets, xdp {bytes}"
    );
    // It knows nothing of protocols or sources.
    assert_eq!(n(if_totals, "udp"), 0);
    assert!(per_source(&ifstats).is_empty());
}

#[test]
fn a_capture_filter_counts_only_what_it_lets_through() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let monitor = MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        "pcap",
        "--bpf",
        "udp",
        "--interval",
        "200ms",
        "--no-connections",
    ])
    .expect("start");
    send_known_traffic(&net);
    let lines = run_until(monitor, UDP4 + UDP6);
    let start = &lines[0];
    assert_eq!(start["backend"], "pcap", "{start}");
    assert!(
        start["description"]
            .as_str()
            .unwrap()
            .contains("filter `udp`"),
        "{start}"
    );
    let totals = final_totals(&lines);
    assert_eq!(totals["packets"], UDP4 + UDP6, "{totals}");
    assert_eq!(totals["udp"], UDP4 + UDP6, "{totals}");
    assert_eq!(
        (totals["tcp"].as_u64(), totals["icmp"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_bad_capture_filter_is_one_clear_line() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let out = std::process::Command::new(monitor_tests::monitor_process::binary())
        .args([
            "--iface",
            &net.host_if,
            "--backend",
            "pcap",
            "--bpf",
            "udp and and",
        ])
        .args(["--duration", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("invalid --bpf filter `udp and and`"),
        "{stderr}"
    );
}

monitor_tests::on_each_backend!(unanswered_syns_alert_by_ratio, answered_syns_raise_no_alert,);

/// 250 SYNs a second for two seconds: under the SYN-rate threshold (500/s), above the
/// rate from which the SYN:SYN-ACK ratio counts (100/s).
fn slow_syns(net: &TestNet, port: u16) {
    let port = port.to_string();
    traffic::hping3(
        net,
        &["-S", "-p", &port, "-c", "500", "-i", "u4000"],
        IpAddr::V4(net.host_v4),
    )
    .expect("hping3 sent its SYNs");
}

fn start_with_alerts(net: &TestNet, backend: &str) -> MonitorProcess {
    MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        backend,
        "--interval",
        "250ms",
        "--pcap-enabled",
        "false",
        "--no-connections",
    ])
    .expect("start the monitor")
}

/// To a closed port: the host answers with RSTs, never a SYN-ACK, so the ratio check
/// reports the source. It needs the backend to see what the host sends.
fn unanswered_syns_alert_by_ratio(backend: &str) {
    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    let mut monitor = start_with_alerts(&net, backend);
    slow_syns(&net, CLOSED_PORT);
    let alert = traffic::wait_for_alert(&mut monitor, "syn_flood", Duration::from_secs(10))
        .expect("the unanswered SYNs are reported");
    assert_eq!(alert["source"], net.ns_v4.to_string(), "{alert}");
    assert_eq!(alert["threshold"], 100.0, "by ratio, not by rate: {alert}");
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains("no SYN-ACK sent back"), "{message}");
    monitor.stop_and_collect().expect("clean stop");
}

/// To a listening port: each SYN gets its SYN-ACK, counted on the way out; no alert.
fn answered_syns_raise_no_alert(backend: &str) {
    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    // Never accepted: the kernel answers each SYN with a SYN-ACK all the same.
    let listener = std::net::TcpListener::bind((net.host_v4, 0)).expect("listen");
    let port = listener.local_addr().unwrap().port();
    let monitor = start_with_alerts(&net, backend);
    slow_syns(&net, port);
    // Two intervals, so that the last SYNs have been through the detectors.
    std::thread::sleep(Duration::from_millis(500));
    let lines = monitor.stop_and_collect().expect("clean stop");
    let raised: Vec<_> = traffic::alerts(&lines);
    assert!(raised.is_empty(), "answered SYNs raised: {raised:?}");
    let totals = final_totals(&lines);
    assert!(totals["syn"].as_u64().unwrap() >= 500, "{totals}");
    drop(listener);
}

/// The monitor run with only the capabilities given (`setpriv` empties the bounding
/// set first): its `start` record and its log.
fn start_record_with_capabilities(caps: &str) -> (Value, String) {
    require_tool("setpriv");
    let binary = monitor_tests::monitor_process::binary();
    let out = std::process::Command::new("setpriv")
        .arg(format!("--bounding-set=-all{caps}"))
        .arg("--inh-caps=-all")
        .arg(&binary)
        .args([
            "--json",
            "--iface",
            "lo",
            "--duration",
            "500ms",
            "--no-connections",
        ])
        .output()
        .expect("run the monitor through setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let start = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .find(|v| v["type"] == "start")
        .unwrap_or_else(|| panic!("no start record; stderr: {stderr}"));
    (start, stderr)
}

/// `--backend auto` takes the best backend the process may use, and says why.
#[test]
fn auto_falls_back_to_what_the_rights_allow() {
    require_kernel!();
    // All rights (root): XDP.
    let (start, stderr) = start_record_with_capabilities(",+bpf,+net_admin,+perfmon,+net_raw");
    assert_eq!(start["backend"], "xdp", "{stderr}");
    assert!(stderr.contains("backend xdp: this is Linux"), "{stderr}");
    // Capture rights but no BPF: libpcap.
    let (start, stderr) = start_record_with_capabilities(",+net_raw,+net_admin");
    assert_eq!(start["backend"], "pcap", "{stderr}");
    assert!(stderr.contains("missing capability CAP_BPF"), "{stderr}");
    assert!(
        stderr.contains("backend pcap: libpcap opened `lo`"),
        "{stderr}"
    );
    // No rights at all: the interface counters, with the detectors they cannot serve
    // named once.
    let (start, stderr) = start_record_with_capabilities("");
    assert_eq!(start["backend"], "ifstats", "{stderr}");
    assert!(stderr.contains("backend pcap not possible"), "{stderr}");
    assert_eq!(stderr.matches("are unavailable").count(), 1, "{stderr}");
}

/// Every task and thread a backend starts ends at `shutdown`, within the monitor's
/// one-second deadline: the XDP backend's readers (kernel log, one per CPU for
/// captures, the packet log) wait on the kernel's buffers until cancelled; the pcap
/// backend's capture threads stop at their next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backends_tasks_end_at_shutdown() {
    use monitor::{
        backend::{
            Backend,
            pcap::{PcapBackend, PcapSetup},
            software::CountingSetup,
            xdp::{KernelSetup, XdpBackend},
        },
        config::XdpModeArg,
        model::cidr::CidrSet,
    };

    require_kernel!();
    let net = TestNet::new().expect("test network");
    let all_end = |tasks: Vec<tokio::task::JoinHandle<()>>| async move {
        tokio::time::timeout(Duration::from_secs(1), async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await
        .is_ok()
    };

    let setup = KernelSetup {
        max_sources: 1_024,
        max_bans: 16,
        packet_log_rate: Some(10),
        ..KernelSetup::default()
    };
    let mut xdp = XdpBackend::attach(&net.host_if, XdpModeArg::Auto, &setup).expect("attach");
    let _captured = xdp.captured_packets().expect("capture readers");
    let _records = xdp.packet_log().expect("packet log reader");
    let tasks = xdp.shutdown();
    let cpus = aya::util::online_cpus().expect("online CPUs").len();
    assert!(tasks.len() > cpus, "{} tasks for {cpus} CPUs", tasks.len());
    assert!(all_end(tasks).await, "an XDP reader outlived the deadline");
    assert!(xdp.shutdown().is_empty(), "handed over once");
    drop(xdp);

    let setup = PcapSetup {
        counting: CountingSetup {
            max_sources: std::num::NonZeroUsize::new(1_024).unwrap(),
            blocklist: CidrSet::default(),
            large_flow_bytes: 0,
            filter: None,
        },
        filter: None,
        capture_snaplen: 96,
        packet_log_rate: None,
    };
    let mut pcap = PcapBackend::open(&net.host_if, &setup).expect("open pcap");
    let tasks = pcap.shutdown();
    assert_eq!(tasks.len(), 1, "one task joins the capture threads");
    assert!(
        all_end(tasks).await,
        "a capture thread outlived the deadline"
    );
}
