//! What one poll does with a snapshot once it is read: the detection input and the
//! detectors' findings, then the stats line. The polling loop (`run.rs`) and the
//! `poll_work` benchmark both call this, so the benchmark times what the monitor runs.

use std::time::{Duration, Instant};

use crate::{
    detect::{DetectInput, Detector, ScanWindow},
    model::{alert::Finding, snapshot::Snapshot},
    stats,
    stats::{IntervalStats, TopSources},
};

/// Detectors compare rates over at least this long. With short intervals a burst that
/// lands in one of them (a fast 5 MB download in 250 ms) would read as four times its
/// per-second rate; a real flood still crosses its threshold in its first interval.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The per-poll work's state: the scan window, and what one poll leaves for the rest
/// of it (the detection input, which alerts' traffic figures are read from, and the
/// stats line's top sources). Its maps are kept from poll to poll: under a flood they
/// hold 65,536 sources, and allocating them anew cost page faults every poll.
#[derive(Debug)]
pub struct PollWork {
    scans: ScanWindow,
    /// Rates are compared over at least this long ([`RATE_WINDOW`]).
    rate_window: Duration,
    input: DetectInput,
    top: TopSources,
    /// When the snapshots were taken that `top` ranks the sources between, when the
    /// detection window is the stats line's interval (at the default interval, always).
    top_between: Option<(Instant, Instant)>,
}

impl PollWork {
    /// `started`: when the first snapshot was taken (the first scan epoch starts then);
    /// `top`: sources in the stats line.
    pub fn new(scan_window: Duration, started: Instant, top: usize, rate_window: Duration) -> Self {
        Self {
            scans: ScanWindow::new(scan_window, started),
            rate_window,
            input: DetectInput::default(),
            top: TopSources::new(top),
            top_between: None,
        }
    }

    /// Runs the detectors over the window from `window_start` to `current`; `last` is
    /// the snapshot the previous poll read (what "for how long" checks advance from).
    /// Returns the findings, and the scan epoch the backend is to start, when one is
    /// due.
    pub fn detect(
        &mut self,
        detector: &mut Detector,
        window_start: &Snapshot,
        last: &Snapshot,
        current: &Snapshot,
    ) -> (Vec<Finding>, Option<u64>) {
        // One pass over the sources: their deltas, scan estimates and, when the stats
        // line covers the same interval, their ranking for it.
        let ranking = window_start.taken == last.taken;
        self.top.clear();
        self.top_between = ranking.then_some((window_start.taken, current.taken));
        let mut scans = std::mem::take(&mut self.input.scans);
        scans.clear();
        let (window, top) = (&self.scans, &mut self.top);
        // Less than a window since start: what came before counts as silence.
        let seconds = current
            .taken
            .duration_since(window_start.taken)
            .as_secs_f64()
            .max(self.rate_window.as_secs_f64());
        let wanted = |delta: &_| detector.wants_syn_acks(delta, seconds);
        let mut estimator = window.estimator();
        self.input
            .refill(window_start, current, wanted, |ip, counters, delta| {
                if ranking {
                    top.offer(ip, delta);
                }
                if let Some(estimate) = estimator.estimate(&ip, counters) {
                    scans.insert(ip, estimate);
                }
            });
        let input = &mut self.input;
        input.scans = scans;
        input.interval_secs = seconds;
        input.elapsed_secs = current.taken.duration_since(last.taken).as_secs_f64();
        let epoch = self.scans.advance(&current.sources, current.taken);
        let findings = detector.evaluate(&self.input);
        (findings, epoch)
    }

    /// The detection input of the last [`detect`](Self::detect).
    pub fn input(&self) -> &DetectInput {
        &self.input
    }

    /// The stats line from `last` to `current`. After [`detect`](Self::detect) over
    /// the same interval its top sources come from that pass; otherwise (a window
    /// longer than the interval) they are computed here.
    pub fn interval_stats(&self, last: &Snapshot, current: &Snapshot) -> IntervalStats {
        if self.top_between == Some((last.taken, current.taken)) {
            stats::interval_with(last, current, |seconds| {
                self.top.rates(&current.sources, seconds)
            })
        } else {
            stats::interval(last, current, self.top.limit())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, net::IpAddr};

    use monitor_common::{
        GlobalCounters, SourceCounters,
        builder::{L4, Packet},
        decode,
        decode::TCP_SYN,
    };

    use super::*;
    use crate::{
        config::Config,
        detect::Lists,
        model::cidr::{Cidr, CidrSet},
    };

    const SCAN_WINDOW: Duration = Duration::from_secs(2);

    /// A SYN from `src` to `port`, counted as the kernel counts it, into `source` and
    /// `host`.
    fn syn(src: [u8; 4], port: u16, source: &mut SourceCounters, host: &mut GlobalCounters) {
        let frame = Packet::ipv4(
            src,
            [192, 0, 2, 1],
            L4::Tcp {
                src_port: 50_000,
                dst_port: port,
                flags: TCP_SYN,
            },
        )
        .build();
        let info = decode(frame.as_slice());
        source.record(&info, 60, 1, src[0] == 198);
        host.record(&info, 60);
    }

    /// The table after `second` seconds of a scripted attack: a spread-out SYN flood
    /// (one SYN each from sources that change every second), one source flooding
    /// alone, a scanner, a blocklisted source (198.51.100.0/24), and quiet sources.
    fn snapshot(start: Instant, second: u32) -> Snapshot {
        let mut host = GlobalCounters::default();
        let mut sources: HashMap<IpAddr, SourceCounters> = HashMap::new();
        let mut send = |src: [u8; 4], ports: std::ops::Range<u16>| {
            let counters = sources.entry(IpAddr::from(src)).or_default();
            for port in ports {
                syn(src, port, counters, &mut host);
            }
        };
        for s in 0..=second {
            if s > 0 && s < 3 {
                for i in 0..12_000u32 {
                    send((0x0a00_0000 + s * 100_000 + i).to_be_bytes(), 80..81);
                }
                send([203, 0, 113, 9], 80..(80 + 700 * s as u16));
            }
            send(
                [203, 0, 113, 44],
                (1_000 + 90 * s as u16)..(1_090 + 90 * s as u16),
            );
            send([198, 51, 100, 7], 443..(443 + s as u16));
            for quiet in 1..=20u8 {
                send([192, 0, 2, 100 + quiet], 22..(22 + u16::from(quiet % 3)));
            }
        }
        // The host answers every source but the listed one.
        let answered = sources
            .iter()
            .filter(
                |(ip, _)| matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[0], 10 | 192 | 203)),
            )
            .map(|(ip, counters)| (*ip, counters.syn))
            .collect();
        Snapshot {
            taken: start + Duration::from_secs(second.into()),
            global: host,
            sources: sources.into_iter().collect(),
            listed_destinations: HashMap::new(),
            large_flows: Vec::new(),
            syn_acks_sent: Some(answered),
            capture_drops: None,
            dropped: HashMap::new(),
        }
    }

    fn detector() -> Detector {
        let cidr = |s: &str| s.parse::<Cidr>().unwrap();
        let lists = Lists {
            blocklist: CidrSet::new([cidr("198.51.100.0/24")]),
            allowlist: CidrSet::new([cidr("192.0.2.120/32")]),
        };
        Detector::new(&Config::default(), lists, "eth0")
    }

    /// Each part on its own, as the polling loop did before the work was shared.
    fn separately(
        detector: &mut Detector,
        scans: &mut ScanWindow,
        (window_start, last, current): (&Snapshot, &Snapshot, &Snapshot),
    ) -> (Vec<Finding>, Option<u64>, IntervalStats, DetectInput) {
        let mut input = DetectInput::from_snapshots(window_start, current);
        input.interval_secs = input.interval_secs.max(1.0);
        input.elapsed_secs = current.taken.duration_since(last.taken).as_secs_f64();
        input.scans = scans.estimates(&current.sources);
        let epoch = scans.advance(&current.sources, current.taken);
        let findings = detector.evaluate(&input);
        let stats = stats::interval(last, current, 5);
        (findings, epoch, stats, input)
    }

    #[test]
    fn shared_work_finds_and_ranks_as_each_part_on_its_own() {
        use crate::model::alert::AlertKind::*;

        let start = Instant::now();
        let polls: Vec<Snapshot> = (0..5).map(|s| snapshot(start, s)).collect();
        let (mut shared_detector, mut own_detector) = (detector(), detector());
        let mut work = PollWork::new(SCAN_WINDOW, start, 5, Duration::from_secs(1));
        let mut scans = ScanWindow::new(SCAN_WINDOW, start);
        // Each poll's window starts at the previous poll, but for one whose window
        // reaches further back (a short interval): its top sources are computed apart.
        let windows = [(0, 0, 1), (1, 1, 2), (1, 2, 3), (3, 3, 4)];
        let mut kinds = Vec::new();
        for (from, last, to) in windows {
            let snapshots = (&polls[from], &polls[last], &polls[to]);
            let (findings, epoch) =
                work.detect(&mut shared_detector, snapshots.0, snapshots.1, snapshots.2);
            let stats = work.interval_stats(snapshots.1, snapshots.2);
            let own = separately(&mut own_detector, &mut scans, snapshots);
            assert_eq!((&findings, epoch), (&own.0, own.1), "poll {to}");
            assert_eq!(stats, own.2, "poll {to}");
            let (shared, own) = (work.input(), &own.3);
            assert_eq!(shared.sources, own.sources, "poll {to}");
            assert_eq!(shared.scans, own.scans, "poll {to}");
            assert_eq!(shared.blocklist_hits, own.blocklist_hits, "poll {to}");
            // Only the SYN-ACKs of sources fast enough to be compared are kept.
            let (shared_sent, own_sent) = (
                shared.syn_ack_sent.as_ref().unwrap(),
                own.syn_ack_sent.as_ref().unwrap(),
            );
            for (ip, sent) in own_sent.iter() {
                let wanted = shared_detector.wants_syn_acks(&own.sources[&ip], own.interval_secs);
                assert_eq!(
                    shared_sent.get(&ip),
                    wanted.then_some(sent),
                    "poll {to}: {ip}"
                );
            }
            assert!(shared_sent.len() < own_sent.len(), "poll {to}");
            if to < 3 {
                // The SYN flooder's.
                assert_eq!(shared_sent.len(), 1, "poll {to}");
            }
            assert_eq!(shared.host, own.host, "poll {to}");
            assert_eq!(
                (shared.interval_secs, shared.elapsed_secs),
                (own.interval_secs, own.elapsed_secs)
            );
            kinds.push(findings.iter().map(|f| f.kind).collect::<Vec<_>>());
            assert_eq!(stats.top_sources.len(), 5, "poll {to}");
        }
        // The script raised what it should: the comparison was not between nothings.
        assert_eq!(
            kinds[0],
            [
                SynFlood,
                SynFlood,
                PortScan,
                PortScan,
                Blocklisted,
                Blocklisted
            ]
        );
        // The last poll: the scanner, the listed source and 14 quiet ones sent; what
        // the flood left in the reused map is gone.
        assert_eq!(work.input().sources.len(), 16);
    }
}
