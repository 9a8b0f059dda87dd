//! Triggered capture, end to end: an hping3 flood from a namespace, the alert, then a
//! pcap file that tshark reads, holding the configured number of packets, all from the
//! attacker. (An unwritable capture directory is in `faults.rs`.) It runs once per
//! backend that sees packets (`xdp::<test>`, `pcap::<test>`).
#![cfg(target_os = "linux")]

use std::{net::IpAddr, process::Command, time::Duration};

use monitor_tests::{
    http_server::TestServer, monitor_process::MonitorProcess, netns::TestNet, require_tool, traffic,
};

monitor_tests::on_each_backend!(a_flood_is_captured_to_a_pcap_file_of_the_attacker_only,);

const PACKETS: u64 = 2_000;

fn tshark_sources(path: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-r", path, "-T", "fields", "-e", "ip.src"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark cannot read {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn a_flood_is_captured_to_a_pcap_file_of_the_attacker_only(backend: &str) {
    require_tool("hping3");
    require_tool("tshark");
    let net = TestNet::new().expect("test network");
    let dir = std::env::temp_dir().join(format!("monitor-captures-{}", net.ns));
    let _ = std::fs::remove_dir_all(&dir);
    // A Discord webhook on loopback: it must hear of the file once it is written.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let discord = runtime.block_on(TestServer::start(Vec::new()));
    let hook = format!("discord={}", discord.url("/api/webhooks/1/token"));
    let mut monitor = MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--backend",
        backend,
        "--interval",
        "250ms",
        "--pcap-dir",
        dir.to_str().unwrap(),
        "--pcap-max-packets",
        &PACKETS.to_string(),
        "--webhook",
        &hook,
    ])
    .expect("start the monitor");
    let flood = traffic::hping3_flood(
        &net,
        &["-S", "-p", "80"],
        IpAddr::V4(net.host_v4),
        Duration::from_secs(3),
    )
    .expect("flood");
    let alert = traffic::wait_for_alert(&mut monitor, "syn_flood", Duration::from_secs(10))
        .expect("the flood is reported");
    let attacker = net.ns_v4.to_string();
    assert_eq!(alert["source"], attacker);
    let capture = monitor
        .wait_for("capture", Duration::from_secs(20))
        .expect("a capture line");
    flood.finish().expect("the flood ran");
    monitor.interrupt().expect("clean stop");

    assert_eq!(capture["source"], attacker, "{capture}");
    assert_eq!(capture["kind"], "syn_flood");
    assert_eq!(capture["packets"], PACKETS, "{capture}");
    assert!(capture.get("error").is_none(), "{capture}");
    let path = capture["path"].as_str().unwrap();
    let name = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        name.starts_with(&format!("syn_flood_{attacker}_")) && name.ends_with("Z.pcap"),
        "{name}"
    );
    let notes = runtime.block_on(discord.wait_for(2, Duration::from_secs(10)));
    assert!(
        notes.iter().any(|r| r.json().to_string().contains(name)),
        "Discord hears of {name}: {:?}",
        notes
            .iter()
            .map(monitor_tests::http_server::Recorded::json)
            .collect::<Vec<_>>()
    );
    let sources = tshark_sources(path);
    assert_eq!(sources.len() as u64, PACKETS, "tshark reads every packet");
    assert!(
        sources.iter().all(|s| *s == attacker),
        "only the attacker's packets"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
