//! Scale: a flood whose every packet comes from a new source address (trafgen in a
//! `TestNet` namespace, IPv4 sources counting up from 10.0.0.0, a million and more
//! distinct ones), against the monitor at its defaults (a per-source table of 65,536,
//! a 1 s interval). Reported: the poll cycle time (from the snapshot to the stats line,
//! the monitor's own `poll cycle` debug line) while the table is full, the monitor's
//! largest RSS (`VmRSS`, sampled every 50 ms), and whether the host-level flood alert
//! (source `many`) was raised. Targets: poll cycle under 50 ms, RSS under 64 MiB. On a
//! busy machine the cycle's wall time includes waiting for a CPU, so the monitor's CPU
//! time per poll (utime + stime over the flood, per poll) is reported too.
//!
//! Twice: unanswered (the spoofed sources do not route back through the veth, so the
//! host's strict reverse-path check drops each SYN once XDP has counted it), and
//! answered: a listening port, the sources routed back into the namespace, and the
//! host sending every source a SYN-ACK (SYN cookies once the backlog is full). The
//! SYN-ACKs sent per destination, which the SYN:SYN-ACK ratio check reads, then fill
//! their table too, as under a SYN flood on a real server.
//!
//! Run: `cargo xtask bench` (or `cargo bench -p monitor-tests --bench scale` after
//! `cargo build --release -p monitor`), as root.

#[cfg(target_os = "linux")]
fn main() {
    if let Err(why) = monitor::backend::xdp::check_privileges() {
        eprintln!("SKIPPED scale: {why:#}");
        return;
    }
    if let Err(why) = linux::main() {
        eprintln!("scale failed: {why:#}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED scale: XDP needs Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, Result, bail};
    use monitor_common::DEFAULT_MAX_SOURCES;
    use monitor_tests::{
        load::{RssSampler, Trafgen, cpu_seconds, link_stat, thousands, trafgen_config},
        monitor_process::MonitorProcess,
        netns::TestNet,
    };

    /// Long enough for well over a million sources at the rates seen here, and a
    /// dozen polls with the table full.
    const FLOOD: Duration = Duration::from_secs(15);
    const DISTINCT_WANTED: u64 = 1_000_000;

    pub(crate) fn main() -> Result<()> {
        measure(Replies::None)?;
        measure(Replies::SynAcks)
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Replies {
        None,
        SynAcks,
    }

    fn measure(replies: Replies) -> Result<()> {
        let net = TestNet::new()?;
        // For SYN-ACKs: a listener that never accepts, and the flood's
        // sources (10.0.0.0/10, below every TestNet's 10.100/16 and up) routed back
        // through the namespace end, whose address is a static neighbour: replies end
        // there (it does not forward), and no neighbour lookup is made per source.
        let _listener = match replies {
            Replies::None => None,
            Replies::SynAcks => {
                monitor_tests::netns::ip(&[
                    "route",
                    "add",
                    "10.0.0.0/10",
                    "via",
                    &net.ns_v4.to_string(),
                    "dev",
                    &net.host_if,
                ])?;
                Some(std::net::TcpListener::bind((net.host_v4, 80))?)
            }
        };
        // SAFETY: single-threaded so far; the child monitor inherits it.
        unsafe { std::env::set_var("RUST_LOG", "info,monitor::run=debug") };
        let mut monitor = MonitorProcess::start(&["--iface", &net.host_if])?;
        let rss = RssSampler::start(monitor.pid(), Duration::from_millis(50));
        let idle_rss = monitor_tests::load::rss_kib(monitor.pid())?;

        let sent_before = link_stat(Some(&net.ns), &net.ns_if, "tx_packets")?;
        let answered_before = link_stat(None, &net.host_if, "tx_packets")?;
        // A SYN from each of 10.0.0.0, 10.0.0.1, ... (trafgen's dinc: +1 per packet).
        let config = trafgen_config(&net, "sa=10.0.0.0, sa=dinc()", "tcp(dp=80, sp=40000, syn)")?;
        let cpu_before = cpu_seconds(monitor.pid())?;
        let cycles_before = poll_cycles(&mut monitor).len();
        let started = Instant::now();
        let flood = Trafgen::start(&net, &config)?;
        let mut alert = None;
        while started.elapsed() < FLOOD {
            if let Ok(line) = monitor.wait_for("alert", Duration::from_millis(500))
                && line["source"] == "many"
                && alert.is_none()
            {
                alert = Some((
                    line["kind"].as_str().unwrap_or("?").to_owned(),
                    started.elapsed(),
                ));
            }
        }
        flood.stop()?;
        let cpu_during = cpu_seconds(monitor.pid())? - cpu_before;
        let cycles_during = poll_cycles(&mut monitor).len() - cycles_before;
        let sent = link_stat(Some(&net.ns), &net.ns_if, "tx_packets")? - sent_before;
        let answered = link_stat(None, &net.host_if, "tx_packets")? - answered_before;
        // One more poll, so that the last packets are in the totals.
        monitor.wait_for("stats", Duration::from_secs(5))?;
        let max_rss_kib = rss.stop();
        let cycles = poll_cycles(&mut monitor);
        let last = monitor.interrupt()?;
        let counted = last["totals"]["packets"].as_u64().context("final totals")?;
        if cycles.is_empty() {
            bail!("no `poll cycle` debug lines from the monitor (RUST_LOG=monitor::run=debug)");
        }
        let when_full = |pick: fn(&(f64, u64, f64)) -> f64| {
            let mut ms: Vec<f64> = cycles
                .iter()
                .filter(|c| c.1 >= u64::from(DEFAULT_MAX_SOURCES))
                .map(pick)
                .collect();
            ms.sort_by(f64::total_cmp);
            ms
        };
        let full = when_full(|c| c.0);
        let full_read = when_full(|c| c.2);
        let largest_table = cycles.iter().map(|c| c.1).max().unwrap_or(0);
        let mib = |kib: u64| kib as f64 / 1024.0;

        println!(
            "Scale, {}: {} packets sent in {} s from as many distinct IPv4 sources \
             (wanted at least {}); {} counted by the monitor; the host sent {} packets back{}",
            match replies {
                Replies::None => "unanswered",
                Replies::SynAcks => "answered",
            },
            thousands(sent),
            FLOOD.as_secs(),
            thousands(DISTINCT_WANTED),
            thousands(counted),
            thousands(answered),
            match replies {
                Replies::None => " (the spoofed SYNs go no further than XDP)",
                Replies::SynAcks => " (SYN-ACKs)",
            }
        );
        if sent < DISTINCT_WANTED {
            println!(
                "NOTE: fewer than {} sources this run (trafgen was slower than usual)",
                thousands(DISTINCT_WANTED)
            );
        }
        println!("| measure | value | target |");
        println!("|---|---:|---:|");
        if full.is_empty() {
            println!(
                "| poll cycle, table full | no poll saw the table full (largest: {} sources) | 50 ms |",
                thousands(largest_table)
            );
        } else {
            println!(
                "| poll cycle with the table full ({} polls, {}+ sources): median / max | {:.1} / {:.1} ms | 50 ms |",
                full.len(),
                thousands(u64::from(DEFAULT_MAX_SOURCES)),
                full[full.len() / 2],
                full[full.len() - 1]
            );
            println!(
                "| of which reading the maps (snapshot): median / max | {:.1} / {:.1} ms | |",
                full_read[full_read.len() / 2],
                full_read[full_read.len() - 1]
            );
        }
        if cycles_during > 0 {
            println!(
                "| monitor CPU per poll cycle during the flood (utime + stime / {cycles_during} polls) | {:.1} ms | |",
                cpu_during * 1e3 / cycles_during as f64
            );
        }
        println!(
            "| RSS: at start / largest during the flood | {:.1} / {:.1} MiB | 64 MiB |",
            mib(idle_rss),
            mib(max_rss_kib)
        );
        match alert {
            Some((kind, after)) => println!(
                "| host-level flood alert (source `many`) | `{kind}` after {:.1} s | raised |",
                after.as_secs_f64()
            ),
            None => println!("| host-level flood alert (source `many`) | NOT raised | raised |"),
        }
        Ok(())
    }

    /// The monitor's `poll cycle: 612.3 ms, 65792 sources (read 48.1 ms)` debug lines so
    /// far: (ms, sources, ms reading the maps).
    fn poll_cycles(monitor: &mut MonitorProcess) -> Vec<(f64, u64, f64)> {
        monitor
            .stderr_so_far()
            .iter()
            .filter_map(|l| l.split_once("poll cycle: ").map(|(_, rest)| rest))
            .filter_map(|rest| {
                let (ms, rest) = rest.split_once(" ms, ")?;
                let (sources, read) = rest.split_once(" sources (read ")?;
                Some((
                    ms.parse().ok()?,
                    sources.parse().ok()?,
                    read.trim_end_matches(" ms)").parse().ok()?,
                ))
            })
            .collect()
    }
}
