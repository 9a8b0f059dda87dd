//! The connection monitor end to end: real processes (`hold_connections`, a binary of
//! this crate) hold real TCP connections, on loopback or to a test namespace, and the
//! monitor, run as a user runs it, names them. Assertions are on our own children's
//! pids only: other processes on this machine may hold many connections too.
#![cfg(target_os = "linux")]

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use monitor_tests::{monitor_process::MonitorProcess, netns::TestNet, require_kernel};
use serde_json::Value;

/// Scans every half second: an alert is due within a second or two of a connection.
const SCAN: &str = "500ms";
const ALERT_TIMEOUT: Duration = Duration::from_secs(20);

/// A `hold_connections` child, killed on drop.
struct Holder {
    child: Child,
    /// `connected LOCAL REMOTE` / `listening ADDR` lines, before `ready`.
    lines: Vec<String>,
}

impl Holder {
    fn start(mut cmd: Command) -> Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("failed to start hold_connections")?;
        let stdout: ChildStdout = child.stdout.take().context("stdout")?;
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line == "ready" {
                return Ok(Self { child, lines });
            }
            lines.push(line);
        }
        let status = child.wait()?;
        bail!("hold_connections exited ({status}) before it was ready")
    }

    fn listen(net: Option<&TestNet>, addrs: &[String]) -> Result<(Self, Vec<SocketAddr>)> {
        let mut cmd = if let Some(net) = net {
            let mut cmd = net.command(binary());
            cmd.arg("listen");
            cmd
        } else {
            let mut cmd = Command::new(binary());
            cmd.arg("listen");
            cmd
        };
        cmd.args(addrs);
        let holder = Self::start(cmd)?;
        let bound = holder
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("listening "))
            .map(str::parse)
            .collect::<Result<Vec<SocketAddr>, _>>()?;
        Ok((holder, bound))
    }

    fn connect(count: usize, to: &[SocketAddr]) -> Result<Self> {
        let mut cmd = Command::new(binary());
        cmd.arg("connect").arg(count.to_string());
        cmd.args(to.iter().map(ToString::to_string));
        Self::start(cmd)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its connections as (local, remote).
    fn connections(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("connected "))
            .filter_map(|l| {
                let (local, remote) = l.split_once(' ')?;
                Some((local.parse().ok()?, remote.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_hold_connections")
}

fn json_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-connections-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&path);
    path
}

fn start_monitor(net: &TestNet, log: &Path, extra: &[&str]) -> MonitorProcess {
    let mut args = vec![
        "--iface",
        net.host_if.as_str(),
        "--interval",
        "250ms",
        "--connections-interval",
        SCAN,
        "--pcap-enabled",
        "false",
        "--json-log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    MonitorProcess::start(&args).expect("start the monitor")
}

/// The first alert of `kind` whose process is `pid` (and whose source is `source`,
/// when given).
fn wait_for_process_alert(
    monitor: &mut MonitorProcess,
    kind: &str,
    pid: u32,
    source: Option<&str>,
) -> Value {
    let deadline = Instant::now() + ALERT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match monitor.wait_for("alert", left) {
            Ok(alert)
                if alert["kind"] == kind
                    && alert["connection"]["pid"] == pid
                    && source.is_none_or(|s| alert["source"] == s) =>
            {
                return alert;
            }
            Ok(_) => {}
            Err(e) => {
                let seen: Vec<String> = monitor
                    .seen
                    .iter()
                    .filter(|v| v["type"] == "alert")
                    .map(|a| format!("{} from {} ({})", a["kind"], a["source"], a["connection"]))
                    .collect();
                panic!(
                    "no {kind} alert for pid {pid} (source {source:?}); alerts seen: {seen:?}: {e:#}"
                )
            }
        }
    }
}

fn about(lines: &[Value], kind: &str, pid: u32) -> usize {
    lines
        .iter()
        .filter(|v| v["type"] == "alert" && v["kind"] == kind && v["connection"]["pid"] == pid)
        .count()
}

/// The JSON-log records of `kind` for `pid`.
fn logged(path: &Path, kind: &str, pid: u32) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON log line"))
        .filter(|v| v["type"] == "alert" && v["kind"] == kind && v["pid"] == pid)
        .collect()
}

/// Waits until the JSON log has a record of `kind` for `pid` (its sink is a queue).
fn wait_logged(path: &Path, kind: &str, pid: u32) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(record) = logged(path, kind, pid).into_iter().next() {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} record for pid {pid} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn thirty_connections_are_excessive_and_five_are_not() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let log = json_log("excessive");
    let mut monitor = start_monitor(&net, &log, &[]);
    let (_listener, bound) =
        Holder::listen(None, &["127.0.0.1:0".into()]).expect("loopback listener");
    let many = Holder::connect(30, &bound).expect("30 connections");
    let few = Holder::connect(5, &bound).expect("5 connections");
    assert_eq!((many.connections().len(), few.connections().len()), (30, 5));

    let alert = wait_for_process_alert(&mut monitor, "excessive_connections", many.pid(), None);
    assert_eq!(alert["source"], format!("pid {}", many.pid()), "{alert}");
    assert_eq!(alert["value"], 30.0, "{alert}");
    assert_eq!(alert["threshold"], 20.0, "{alert}");
    assert_eq!(alert["unit"], "connections", "{alert}");
    let connection = &alert["connection"];
    assert_eq!(connection["connections"], 30, "{alert}");
    // Its name is longer than the kernel's 15 characters, and still whole.
    assert_eq!(connection["process"], "hold_connections", "{alert}");
    assert_eq!(
        alert["target"],
        format!("hold_connections[{}]", many.pid()),
        "{alert}"
    );

    let record = wait_logged(&log, "excessive_connections", many.pid());
    assert_eq!(record["connections"], 30, "{record}");
    assert_eq!(record["reason"], "Excessive connections", "{record}");
    assert_eq!(record["process"], "hold_connections", "{record}");
    assert!(record["timestamp"].is_string(), "{record}");

    // Several more scans: the process with 5 never comes up.
    std::thread::sleep(Duration::from_secs(2));
    let lines = monitor.stop_and_collect().expect("monitor stops cleanly");
    assert_eq!(about(&lines, "excessive_connections", few.pid()), 0);
    assert_eq!(
        about(&lines, "excessive_connections", many.pid()),
        1,
        "raised once, not every scan"
    );
    // Ended at exit, with its process.
    let end = lines
        .iter()
        .find(|v| {
            v["type"] == "alert_end"
                && v["kind"] == "excessive_connections"
                && v["connection"]["pid"] == many.pid()
        })
        .expect("an alert_end for it at exit");
    assert_eq!(end["peak_value"], 30.0, "{end}");
}

#[test]
fn a_connection_to_a_blocklisted_address_names_its_process() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let (_listener, bound) = Holder::listen(
        Some(&net),
        &[format!("{}:0", net.ns_v4), format!("[{}]:0", net.ns_v6)],
    )
    .expect("listener in the namespace");
    let blocklist = format!("{}/32,{}/128", net.ns_v4, net.ns_v6);
    let log = json_log("blocklisted");
    let mut monitor = start_monitor(&net, &log, &["--blocklist", &blocklist]);
    let client = Holder::connect(1, &bound).expect("connect to the namespace");
    let connections = client.connections();
    assert_eq!(connections.len(), 2);

    for (local, remote) in connections {
        let source = remote.ip().to_string();
        // Either family may be seen first: look among those already read, then wait.
        let earlier = monitor
            .seen
            .iter()
            .find(|a| {
                a["type"] == "alert"
                    && a["kind"] == "blocklisted_connection"
                    && a["connection"]["pid"] == client.pid()
                    && a["source"] == source
            })
            .cloned();
        let alert = earlier.unwrap_or_else(|| {
            wait_for_process_alert(
                &mut monitor,
                "blocklisted_connection",
                client.pid(),
                Some(&source),
            )
        });
        assert_eq!(alert["severity"], "high", "{alert}");
        let socket = &alert["connection"]["socket"];
        assert_eq!(socket["protocol"], "tcp", "{alert}");
        assert_eq!(socket["state"], "established", "{alert}");
        assert_eq!(socket["remote_ip"], source, "{alert}");
        assert_eq!(socket["remote_port"], remote.port(), "{alert}");
        assert_eq!(socket["local_ip"], local.ip().to_string(), "{alert}");
        assert_eq!(socket["local_port"], local.port(), "{alert}");
        assert_eq!(alert["connection"]["process"], "hold_connections");

        // Predecessor 002's record, in the JSON log.
        let deadline = Instant::now() + Duration::from_secs(10);
        let record = loop {
            let found = logged(&log, "blocklisted_connection", client.pid())
                .into_iter()
                .find(|r| r["remote_ip"] == source);
            match found {
                Some(r) => break r,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                None => panic!("no JSON-log record for {source}"),
            }
        };
        assert_eq!(record["pid"], client.pid(), "{record}");
        assert_eq!(record["local_ip"], local.ip().to_string(), "{record}");
        assert_eq!(record["local_port"], local.port(), "{record}");
        assert_eq!(record["remote_port"], remote.port(), "{record}");
        assert_eq!(record["reason"], "Blocklisted connection", "{record}");
    }
    monitor.interrupt().expect("monitor stops cleanly");
}

#[test]
fn no_connections_raises_neither() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let (_remote, remote) = Holder::listen(Some(&net), &[format!("{}:0", net.ns_v4)])
        .expect("listener in the namespace");
    let (_local, local) = Holder::listen(None, &["127.0.0.1:0".into()]).expect("listener");
    let log = json_log("off");
    let blocklist = format!("{}/32", net.ns_v4);
    let monitor = start_monitor(&net, &log, &["--blocklist", &blocklist, "--no-connections"]);
    let many = Holder::connect(30, &local).expect("30 connections");
    let listed = Holder::connect(1, &remote).expect("a blocklisted connection");
    // Six scans' worth, had it been on.
    std::thread::sleep(Duration::from_secs(3));
    let lines = monitor.stop_and_collect().expect("monitor stops cleanly");
    let connection_alerts: Vec<&Value> = lines
        .iter()
        .filter(|v| v["kind"] == "excessive_connections" || v["kind"] == "blocklisted_connection")
        .collect();
    assert!(connection_alerts.is_empty(), "{connection_alerts:?}");
    // The packet detector still saw the listed address answer.
    assert!(
        lines
            .iter()
            .any(|v| v["type"] == "alert" && v["kind"] == "blocklisted"),
        "the packet blocklist still works"
    );
    drop((many, listed));
}
