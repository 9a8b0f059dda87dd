//! Capture throughput: trafgen (one process, as fast as it goes) floods the veth of a
//! `TestNet` with 64-byte UDP frames for a fixed time, once per way of watching the
//! host end: nothing attached (the baseline rate), the monitor's XDP backend, `tcpdump
//! -w /dev/null`, and the monitor's pcap backend (when this build has `--backend`).
//! Reported per row: packets sent (the namespace end's `tx_packets`), packets counted
//! (the monitor's totals over the flood; tcpdump's own `packets received by filter`,
//! and how many it captured and dropped), and the CPU seconds the watching process used
//! (utime + stime from /proc/PID/stat). Kernel work done in softirq context (the XDP
//! program itself, the `AF_PACKET` copy to tcpdump) is charged to whichever process the
//! CPU was running, mostly trafgen, so it is not in the watcher's figure.
//!
//! Run: `cargo xtask bench` (or `cargo bench -p monitor-tests --bench
//! capture_throughput` after `cargo build --release -p monitor`), as root.

#[cfg(target_os = "linux")]
fn main() {
    if let Err(why) = monitor::backend::xdp::check_privileges() {
        eprintln!("SKIPPED capture_throughput: {why:#}");
        return;
    }
    if let Err(why) = linux::main() {
        eprintln!("capture_throughput failed: {why:#}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED capture_throughput: XDP needs Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::{
        io::Read as _,
        process::{Command, Stdio},
        time::Duration,
    };

    use anyhow::{Context as _, Result, bail};
    use monitor_tests::{
        load::{Trafgen, cpu_seconds, link_stat, softirq_seconds, thousands, trafgen_config},
        monitor_process::{MonitorProcess, binary},
        netns::TestNet,
    };

    const FLOOD: Duration = Duration::from_secs(10);

    struct Row {
        watcher: String,
        sent: u64,
        /// What the host end's driver received (its `rx_packets`).
        received: u64,
        counted: Option<u64>,
        note: String,
        cpu_secs: Option<f64>,
        softirq_secs: f64,
    }

    pub(crate) fn main() -> Result<()> {
        let net = TestNet::new()?;
        // 14 + 20 + 8 + 22 = 64 bytes (the shortest Ethernet frame, FCS aside).
        let config = trafgen_config(
            &net,
            &format!("sa={}", net.ns_v4),
            "udp(sp=40000, dp=9), fill(0x00, 22)",
        )?;
        let mut rows = vec![flood(&net, &config, "nothing attached")?];

        let xdp = MonitorProcess::start(&["--iface", &net.host_if])?;
        rows.push(monitored(&net, &config, "monitor, XDP backend", xdp)?);

        rows.push(tcpdump(&net, &config)?);

        let help = Command::new(binary()).arg("--help").output()?;
        if String::from_utf8_lossy(&help.stdout).contains("--backend") {
            let pcap = MonitorProcess::start(&["--iface", &net.host_if, "--backend", "pcap"])?;
            rows.push(monitored(&net, &config, "monitor, pcap backend", pcap)?);
        } else {
            rows.push(Row {
                watcher: "monitor, pcap backend".into(),
                sent: 0,
                received: 0,
                counted: None,
                note: "pcap backend not built (`monitor --help` has no `--backend`)".into(),
                cpu_secs: None,
                softirq_secs: 0.0,
            });
        }

        println!(
            "Capture throughput: trafgen, 1 CPU, 64-byte UDP frames, {} s per row",
            FLOOD.as_secs()
        );
        println!(
            "| watcher | sent | received by the host end | counted | counted / received \
             | CPU s (watcher) | softirq CPU s (machine) | note |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        for r in &rows {
            let counted = r.counted.map_or("-".into(), thousands);
            let share = match r.counted {
                Some(c) if r.received > 0 => {
                    format!("{:.1} %", 100.0 * c as f64 / r.received as f64)
                }
                _ => "-".into(),
            };
            let cpu = r.cpu_secs.map_or("-".into(), |s| format!("{s:.2}"));
            println!(
                "| {} | {} | {} | {counted} | {share} | {cpu} | {:.2} | {} |",
                r.watcher,
                thousands(r.sent),
                thousands(r.received),
                r.softirq_secs,
                r.note
            );
        }
        Ok(())
    }

    /// Floods for [`FLOOD`]: what was sent and received; the callers add what their
    /// watcher counted and used.
    fn flood(net: &TestNet, config: &str, watcher: &str) -> Result<Row> {
        let sent_before = link_stat(Some(&net.ns), &net.ns_if, "tx_packets")?;
        let received_before = link_stat(None, &net.host_if, "rx_packets")?;
        let softirq_before = softirq_seconds()?;
        let trafgen = Trafgen::start(net, config)?;
        std::thread::sleep(FLOOD);
        trafgen.stop()?;
        let softirq_secs = softirq_seconds()? - softirq_before;
        let sent = link_stat(Some(&net.ns), &net.ns_if, "tx_packets")? - sent_before;
        let received = link_stat(None, &net.host_if, "rx_packets")? - received_before;
        Ok(Row {
            watcher: watcher.into(),
            sent,
            received,
            counted: None,
            note: String::new(),
            cpu_secs: None,
            softirq_secs,
        })
    }

    /// A monitor already started: what it counted and the CPU it used over the flood;
    /// then it is stopped.
    fn monitored(
        net: &TestNet,
        config: &str,
        watcher: &str,
        mut monitor: MonitorProcess,
    ) -> Result<Row> {
        let packets = |line: &serde_json::Value| {
            line["totals"]["packets"]
                .as_u64()
                .context("a line with totals")
        };
        // Stats lines count their interval; the final line, the whole run.
        monitor.wait_for("stats", Duration::from_secs(5))?;
        let before: u64 = monitor
            .seen
            .iter()
            .filter(|l| l["type"] == "stats")
            .map(packets)
            .sum::<Result<u64>>()?;
        let cpu_before = cpu_seconds(monitor.pid())?;
        let pid = monitor.pid();
        let mut row = flood(net, config, watcher)?;
        let cpu = cpu_seconds(pid)? - cpu_before;
        let total = packets(&monitor.interrupt()?)?;
        row.counted = Some(total - before);
        row.cpu_secs = Some(cpu);
        Ok(row)
    }

    fn tcpdump(net: &TestNet, config: &str) -> Result<Row> {
        monitor_tests::require_tool("tcpdump");
        let mut child = Command::new("tcpdump")
            .args(["-i", &net.host_if, "-w", "/dev/null", "-n"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start tcpdump")?;
        // It says `listening on ...` once capturing; give it a moment instead.
        std::thread::sleep(Duration::from_secs(1));
        let pid = child.id() as i32;
        let cpu_before = cpu_seconds(pid)?;
        let mut row = flood(net, config, "tcpdump -w /dev/null")?;
        let cpu = cpu_seconds(pid)? - cpu_before;
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .context("tcpdump's stderr")?
            .read_to_string(&mut stderr)?;
        child.wait()?;
        // `N packets captured`, `N packets received by filter`, `N packets dropped by kernel`
        let stat = |what: &str| {
            stderr
                .lines()
                .find(|l| l.ends_with(what))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let (Some(captured), Some(received), Some(dropped)) = (
            stat("packets captured"),
            stat("packets received by filter"),
            stat("packets dropped by kernel"),
        ) else {
            bail!("no statistics from tcpdump: {stderr}");
        };
        row.counted = Some(received);
        row.cpu_secs = Some(cpu);
        row.note = format!(
            "received by filter; {} captured, {} dropped by the kernel",
            thousands(captured),
            thousands(dropped)
        );
        Ok(row)
    }
}
