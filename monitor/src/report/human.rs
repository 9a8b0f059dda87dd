//! Human-readable lines: one per interval, and a block of final totals.

use std::{io::Write, time::Duration};

use log::error;
use monitor_common::GlobalCounters;

use super::{Reporter, RunInfo};
use crate::{
    alert::human::render,
    config::MitigateMode,
    model::{
        alert::AlertEvent,
        capture::CaptureDone,
        format::{bitrate, now_rfc3339, thousands},
    },
    stats::IntervalStats,
};

pub struct HumanReporter<W: Write> {
    out: W,
    /// ANSI colours for alerts (off when stdout is not a terminal).
    colour: bool,
}

impl<W: Write> HumanReporter<W> {
    pub fn new(out: W, colour: bool) -> Self {
        Self { out, colour }
    }

    fn emit(&mut self, text: &str) {
        if let Err(err) = self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
        {
            error!("failed to write to stdout: {err}");
        }
    }
}

/// 1234567 -> "1,234,567"
/// What became of a capture, in one line (the plain output and the dashboard's notes).
pub fn capture_line(done: &CaptureDone) -> String {
    match &done.error {
        None => format!(
            "capture of {} ({}): {} packets in {}",
            done.source,
            done.kind.as_str(),
            thousands(done.packets),
            done.path.display()
        ),
        Some(error) => format!(
            "capture of {} ({}) failed after {} packets: {error}",
            done.source,
            done.kind.as_str(),
            thousands(done.packets)
        ),
    }
}

/// `dropped`, or `would drop` in dry-run.
fn dropped_label(mode: MitigateMode) -> &'static str {
    if mode == MitigateMode::DryRun {
        "would drop"
    } else {
        "dropped"
    }
}

fn rate(r: f64) -> String {
    thousands(r.round() as u64)
}

impl<W: Write> Reporter for HumanReporter<W> {
    fn start(&mut self, run: &RunInfo) {
        log::info!(
            "monitoring {} every {}; Ctrl-C to stop",
            run.description,
            humantime::format_duration(run.interval)
        );
    }

    fn interval(&mut self, run: &RunInfo, stats: &IntervalStats) {
        let r = &stats.rates;
        let time = now_rfc3339();
        let clock = time.get(11..19).unwrap_or(&time);
        let mut line = format!(
            "{clock} {} {:>9} pps {:>13} | tcp {} udp {} icmp {} other {} | syn {}/s",
            run.iface,
            rate(r.pps),
            bitrate(r.bits_per_sec),
            rate(r.tcp_pps),
            rate(r.udp_pps),
            rate(r.icmp_pps),
            rate(r.other_pps),
            rate(r.syn_per_sec),
        );
        if let Some(drops) = stats.capture_drops {
            line.push_str(&format!(
                " | pcap drop {} ifdrop {}",
                thousands(drops.dropped),
                thousands(drops.if_dropped)
            ));
        }
        if run.mitigation != MitigateMode::Off {
            line.push_str(&format!(
                " | {} {} pps {}",
                dropped_label(run.mitigation),
                rate(r.dropped_pps),
                bitrate(r.dropped_bits_per_sec)
            ));
        }
        if !stats.top_sources.is_empty() {
            line.push_str(" | top");
            for s in &stats.top_sources {
                line.push_str(&format!(" {} {} pps", s.ip, rate(s.pps)));
            }
        }
        line.push('\n');
        self.emit(&line);
    }

    fn alerts(&mut self, _run: &RunInfo, events: &[AlertEvent]) {
        for event in events {
            let mut line = render(event, self.colour);
            line.push('\n');
            self.emit(&line);
        }
    }

    fn capture(&mut self, _run: &RunInfo, done: &CaptureDone) {
        self.emit(&format!("{}\n", capture_line(done)));
    }

    fn finish(&mut self, run: &RunInfo, c: &GlobalCounters, elapsed: Duration) {
        let t = thousands;
        let text = format!(
            "final totals after {:.1}s, {}:\n\
             \x20 packets {} ({} bytes)\n\
             \x20 tcp {}  udp {}  icmp {}  other {}  non-ip {}  malformed {}\n\
             \x20 ipv4 {}  ipv6 {}\n\
             \x20 syn {}  syn-ack {}  rst {}  fin {}  fragments {}\n",
            elapsed.as_secs_f64(),
            run.description,
            t(c.total.packets),
            t(c.total.bytes),
            t(c.tcp.packets),
            t(c.udp.packets),
            t(c.icmp.packets),
            t(c.other.packets),
            t(c.non_ip.packets),
            t(c.malformed.packets),
            t(c.ipv4.packets),
            t(c.ipv6.packets),
            t(c.syn),
            t(c.syn_ack),
            t(c.rst),
            t(c.fin),
            t(c.fragments),
        );
        let text = if run.mitigation == MitigateMode::Off {
            text
        } else {
            format!(
                "{text}\x20 {} {} ({} bytes)\n",
                dropped_label(run.mitigation),
                t(c.dropped.packets),
                t(c.dropped.bytes)
            )
        };
        self.emit(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mitigation: MitigateMode) -> RunInfo {
        RunInfo {
            iface: "eth0".into(),
            backend: "xdp",
            description: "xdp (native mode) on eth0".into(),
            interval: Duration::from_secs(1),
            mitigation,
        }
    }

    fn printed(mitigation: MitigateMode) -> String {
        let mut out = Vec::new();
        let mut reporter = HumanReporter::new(&mut out, false);
        let mut totals = GlobalCounters::default();
        totals.dropped.packets = 48_210;
        totals.dropped.bytes = 3_374_700;
        let stats = IntervalStats {
            seconds: 1.0,
            totals,
            rates: crate::stats::Rates {
                dropped_pps: 48_210.0,
                dropped_bits_per_sec: 26_997_600.0,
                ..Default::default()
            },
            top_sources: Vec::new(),
            capture_drops: None,
            dropped_sources: Vec::new(),
        };
        reporter.interval(&run(mitigation), &stats);
        reporter.finish(&run(mitigation), &totals, Duration::from_secs(4));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pcap_drops_show_when_the_backend_has_them() {
        let mut out = Vec::new();
        let mut reporter = HumanReporter::new(&mut out, false);
        let stats = IntervalStats {
            seconds: 1.0,
            totals: GlobalCounters::default(),
            rates: crate::stats::Rates::default(),
            top_sources: Vec::new(),
            capture_drops: Some(crate::model::snapshot::CaptureDrops {
                dropped: 1_234,
                if_dropped: 5,
            }),
            dropped_sources: Vec::new(),
        };
        reporter.interval(&run(MitigateMode::Off), &stats);
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains("| pcap drop 1,234 ifdrop 5"), "{line}");
        assert!(!printed(MitigateMode::Off).contains("pcap drop"));
    }

    #[test]
    fn drops_show_only_with_mitigation() {
        let on = printed(MitigateMode::On);
        assert!(on.contains(" | dropped 48,210 pps 27.0 Mbit/s\n"), "{on}");
        assert!(on.contains("  dropped 48,210 (3,374,700 bytes)\n"), "{on}");
        let dry = printed(MitigateMode::DryRun);
        assert!(dry.contains(" | would drop 48,210 pps"), "{dry}");
        assert!(
            dry.contains("  would drop 48,210 (3,374,700 bytes)"),
            "{dry}"
        );
        let off = printed(MitigateMode::Off);
        assert!(!off.contains("drop"), "{off}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bitrate(0.0), "0.0 bit/s");
        assert_eq!(bitrate(12_300_000.0), "12.3 Mbit/s");
    }
}
