//! Human-readable lines: one per interval, and a block of final totals.

use std::{io::Write, time::Duration};

use log::error;
use monitor_common::GlobalCounters;

use super::{Reporter, RunInfo, now_rfc3339};
use crate::{
    alert::{AlertEvent, human::render},
    capture::CaptureDone,
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
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bits per second with an SI unit, e.g. "12.3 Mbit/s".
pub fn bitrate(bits_per_sec: f64) -> String {
    let units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let mut value = bits_per_sec;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
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
        let line = match &done.error {
            None => format!(
                "capture of {} ({}): {} packets in {}\n",
                done.source,
                done.kind.as_str(),
                thousands(done.packets),
                done.path.display()
            ),
            Some(error) => format!(
                "capture of {} ({}) failed after {} packets: {error}\n",
                done.source,
                done.kind.as_str(),
                thousands(done.packets)
            ),
        };
        self.emit(&line);
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
        self.emit(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
