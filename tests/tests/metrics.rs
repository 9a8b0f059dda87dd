//! The Prometheus endpoint scraped by a real Prometheus server (Debian's `prometheus`),
//! whose query API must return exactly the packets sent; the shipped scrape config and
//! alerting rules checked by `promtool`; and the stats export of the same run.
#![cfg(target_os = "linux")]

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::{
    monitor_process::{MonitorProcess, binary},
    netns::TestNet,
    require_kernel, require_tool, send,
};
use serde_json::Value;

/// An odd count, so that no other traffic could add up to it by chance.
const UDP_PACKETS: u64 = 37;
const UDP_PAYLOAD: usize = 64;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A port free on loopback right now (the kernel picks it; we release it for the
/// server that binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `promtool <args>` must succeed.
fn promtool(args: &[&str]) {
    require_tool("promtool");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_file("dist/prometheus"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shipped_prometheus_config_and_rules_pass_promtool() {
    promtool(&["check", "config", "prometheus.yml"]);
    promtool(&["check", "rules", "alerts.yml"]);
    // The rules' own unit tests: a flood alert fires while one is active, webhook
    // failures and a down monitor are reported.
    promtool(&["test", "rules", "alerts_test.yml"]);
}

/// A Prometheus server run for one test; killed on drop.
struct Prometheus {
    child: Child,
    api: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Self {
        require_tool("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: monitor\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        Self {
            child,
            api: format!("http://{listen}"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET <path>` on its HTTP API; None while it is not answering.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .get(format!("{}{path}", self.api))
                .query(query)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            response.json::<Value>().await.ok()
        })
    }

    /// The value of an instant query's only sample, as Prometheus prints it.
    fn query_one(&self, promql: &str) -> Option<String> {
        let answer = self.get("/api/v1/query", &[("query", promql)])?;
        let result = answer["data"]["result"].as_array()?;
        match result.as_slice() {
            [sample] => sample["value"][1].as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// Polls `promql` until it returns `want`; returns the last answer either way.
    fn wait_for(&self, promql: &str, want: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query_one(promql);
            if last.as_deref() == Some(want) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_exact_count_of_packets_sent() {
    require_kernel!();
    let net = TestNet::new().expect("test network");
    let dir = temp_dir("metrics");
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let export = dir.join("stats.csv");
    let monitor = MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--interval",
        "200ms",
        "--metrics",
        &metrics_addr.to_string(),
        "--export",
        export.to_str().unwrap(),
        // No alert may be active: no host process's connections.
        "--no-connections",
    ])
    .expect("start the monitor");
    let prometheus = Prometheus::start(&dir, metrics_addr);

    // Prometheus has scraped the monitor at least once (up == 1) before any traffic,
    // so the counter's whole history is in its database.
    let up = prometheus.wait_for("up{job=\"monitor\"}", "1", Duration::from_secs(60));
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "prometheus log:\n{}",
        prometheus.log()
    );

    let dst = SocketAddr::new(IpAddr::V4(net.host_v4), 7_000);
    send::in_netns(&net.ns, move || {
        send::udp(dst, UDP_PACKETS as usize, UDP_PAYLOAD)
    })
    .expect("send UDP from the namespace");

    let want = UDP_PACKETS.to_string();
    let udp = prometheus.wait_for(
        "monitor_packets_total{job=\"monitor\",protocol=\"udp\"}",
        &want,
        Duration::from_secs(60),
    );
    assert_eq!(
        udp.as_deref(),
        Some(want.as_str()),
        "prometheus log:\n{}",
        prometheus.log()
    );
    // Exactly: nothing else crossed the veth, and the bytes are the frames'.
    let frame = 14 + 20 + 8 + UDP_PAYLOAD as u64;
    let checks = [
        (
            "sum(monitor_packets_total{job=\"monitor\"})",
            UDP_PACKETS.to_string(),
        ),
        (
            "monitor_ip_packets_total{job=\"monitor\",family=\"ipv4\"}",
            UDP_PACKETS.to_string(),
        ),
        (
            "monitor_received_bytes_total{job=\"monitor\",protocol=\"udp\"}",
            (UDP_PACKETS * frame).to_string(),
        ),
        (
            "monitor_tcp_flags_total{job=\"monitor\",flag=\"syn\"}",
            "0".to_string(),
        ),
        (
            "sum(monitor_active_alerts{job=\"monitor\"})",
            "0".to_string(),
        ),
    ];
    for (promql, want) in checks {
        assert_eq!(
            prometheus.query_one(promql).as_deref(),
            Some(want.as_str()),
            "{promql}"
        );
    }
    // The info metric names the interface and the backend.
    let info = prometheus
        .get(
            "/api/v1/query",
            &[("query", "monitor_run_info{job=\"monitor\"}")],
        )
        .expect("query the info metric");
    let labels = &info["data"]["result"][0]["metric"];
    assert_eq!(labels["iface"], net.host_if.as_str(), "{info}");
    assert_eq!(labels["backend"], "xdp", "{info}");

    monitor.interrupt().expect("clean stop");

    // The export of the same run: a header, then rows whose last cumulative count is
    // exactly what was sent.
    let text = std::fs::read_to_string(&export).expect("the export file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 2, "{text}");
    let last = rows.last().unwrap();
    assert_eq!(last[column("udp")], want, "{text}");
    assert_eq!(last[column("iface")], net.host_if, "{text}");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_taken_metrics_port_is_one_error_line_before_attaching() {
    // Nothing is attached: the port is checked first, so no kernel is needed.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(binary())
        .args(["--iface", "lo", "--metrics", &addr])
        .output()
        .expect("run the monitor");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!(
            "error: failed to listen for metrics on {addr} (--metrics): "
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("monitoring xdp"), "{stderr}");
}

#[test]
fn an_unwritable_export_path_is_one_error_line() {
    let out = Command::new(binary())
        .args(["--iface", "lo", "--export", "/nonexistent-dir/stats.csv"])
        .output()
        .expect("run the monitor");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: failed to open the export file /nonexistent-dir/stats.csv: No such file or directory (os error 2)"
    );
    let out = Command::new(binary())
        .args(["--iface", "lo", "--export", "stats.txt"])
        .output()
        .expect("run the monitor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().starts_with(
            "error: export file stats.txt: the name must end in .csv, .json or .jsonl"
        ),
        "{stderr}"
    );
}
