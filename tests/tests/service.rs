//! The systemd unit in `dist/`: systemd's own checker accepts it, its configuration
//! file is valid, and the capabilities it grants (no root) are enough to run the
//! monitor for real, counting exactly; one fewer is refused with one clear line.
#![cfg(target_os = "linux")]

use std::{
    io::{BufRead as _, BufReader},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use monitor_tests::{monitor_process::binary, netns::TestNet, require_kernel, send};
use serde_json::Value;

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dist")
        .join(file)
}

fn unit_text() -> String {
    std::fs::read_to_string(dist("monitor.service")).expect("dist/monitor.service")
}

/// The capabilities of `AmbientCapabilities=` in the unit, e.g. `["CAP_BPF", ...]`.
fn unit_capabilities() -> Vec<String> {
    let text = unit_text();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities= in the unit");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    // `cargo xtask setup` installs it (Debian's `systemd`, which need not be running).
    monitor_tests::require_tool("systemd-analyze");
    // verify checks that ExecStart's program exists: point it at the built binary.
    let dir = std::env::temp_dir().join(format!("monitor-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("monitor.service");
    let text = unit_text().replace("/usr/local/bin/monitor", binary().to_str().unwrap());
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and misplaced settings are only warnings: none allowed.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_unit_grants_capabilities_not_root() {
    let text = unit_text();
    assert!(text.contains("\nDynamicUser=yes\n"));
    assert!(!text.contains("User=root"));
    let caps = unit_capabilities();
    assert_eq!(caps, ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
    let bounding = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet=");
    assert_eq!(bounding.split_whitespace().collect::<Vec<_>>(), caps);
    assert!(text.contains("ExecStart=/usr/local/bin/monitor --config /etc/monitor/monitor.toml"));
}

#[test]
fn the_service_configuration_is_valid() {
    let out = Command::new(binary())
        .args([
            "--config",
            dist("monitor.toml").to_str().unwrap(),
            "--print-config",
        ])
        .output()
        .expect("run the monitor");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("log = \"/var/log/monitor/alerts.log\""),
        "{printed}"
    );
    assert!(
        printed.contains("json_log = \"/var/log/monitor/alerts.jsonl\""),
        "{printed}"
    );
    assert!(
        printed.contains("dir = \"/var/lib/monitor/captures\""),
        "{printed}"
    );
    assert!(printed.contains("listen = \"127.0.0.1:9850\""), "{printed}");
}

/// `setpriv` running the monitor as `nobody` with exactly `caps` (ambient, inheritable
/// and bounding), as systemd does for the unit.
fn as_nobody_with(caps: &[String], args: &[&str]) -> Command {
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let list = list.join(",");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &format!("--inh-caps=-all,{list}"),
        &format!("--ambient-caps=-all,{list}"),
        &format!("--bounding-set=-all,{list}"),
    ])
    .arg(binary())
    .args(args)
    .current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn the_units_capabilities_suffice_without_root() {
    require_kernel!();
    monitor_tests::require_tool("setpriv");
    let net = TestNet::new().expect("test network");
    let caps = unit_capabilities();
    let mut child = as_nobody_with(
        &caps,
        &[
            "--iface",
            &net.host_if,
            "--json",
            "--interval",
            "200ms",
            "--duration",
            "3s",
            "--pcap-enabled",
            "false",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start the monitor through setpriv");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().expect("a start line").unwrap()).unwrap();
    assert_eq!(first["type"], "start", "{first}");
    let dst = SocketAddr::new(IpAddr::V4(net.host_v4), 7_000);
    send::in_netns(&net.ns, move || send::udp(dst, 23, 32)).expect("send UDP");
    let last: Value = lines
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .find(|v| v["type"] == "final")
        .expect("a final line");
    assert!(child.wait().unwrap().success());
    assert_eq!(last["totals"]["udp"], 23, "{last}");
    assert_eq!(last["totals"]["packets"], 23, "{last}");
}

#[test]
fn without_cap_perfmon_the_monitor_says_so() {
    require_kernel!();
    monitor_tests::require_tool("setpriv");
    let caps: Vec<String> = unit_capabilities()
        .into_iter()
        .filter(|c| c != "CAP_PERFMON")
        .collect();
    // XDP named: `--backend auto` would fall back to libpcap, which needs no
    // CAP_PERFMON (tests/backends.rs checks that fallback).
    let out = as_nobody_with(
        &caps,
        &["--backend", "xdp", "--iface", "lo", "--duration", "1s"],
    )
    .output()
    .expect("run the monitor through setpriv");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .trim()
            .starts_with("error: missing capability CAP_PERFMON: run as root"),
        "{stderr}"
    );
}
