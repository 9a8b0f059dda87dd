//! Port scans: a source that tries at least N distinct destination ports, or M
//! distinct destination hosts, within the window. The counting is the backend's (in
//! the kernel, with bounded memory per source); this decides on its estimates.

use std::net::IpAddr;

use crate::{
    config::PortScanConfig,
    model::alert::{AlertKind, AlertSource, Finding, Target, Unit},
};

/// What the backend estimates for one source over the last `port_scan.window`.
/// Count only what the source initiates (TCP SYNs without ACK, UDP, and other first
/// packets), not replies to the host's own connections: a server answering a
/// browser reaches many of the host's ephemeral ports without scanning anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanEstimate {
    pub distinct_ports: u32,
    pub distinct_hosts: u32,
}

pub fn port_scan(
    ip: IpAddr,
    estimate: &ScanEstimate,
    config: &PortScanConfig,
    target: &Target,
) -> Option<Finding> {
    let (ports, hosts) = (estimate.distinct_ports, estimate.distinct_hosts);
    let (port_limit, host_limit) = (config.ports.get(), config.hosts.get());
    let by_ports = ports >= port_limit;
    let by_hosts = hosts >= host_limit;
    if !by_ports && !by_hosts {
        return None;
    }
    // Report the measure that is further over its threshold.
    let ports_excess = f64::from(ports) / f64::from(port_limit);
    let hosts_excess = f64::from(hosts) / f64::from(host_limit);
    let (value, threshold, unit) = if by_ports && (!by_hosts || ports_excess >= hosts_excess) {
        (ports, port_limit, Unit::Ports)
    } else {
        (hosts, host_limit, Unit::Hosts)
    };
    let message = format!(
        "{ports} ports across {hosts} hosts in the last {} (threshold {port_limit} ports or {host_limit} hosts)",
        humantime::format_duration(config.window)
    );
    Some(Finding {
        kind: AlertKind::PortScan,
        source: AlertSource::Ip(ip),
        target: target.clone(),
        value: f64::from(value),
        threshold: f64::from(threshold),
        unit,
        message,
        flow: None,
        connection: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::fixtures::eth0;

    fn scan(ports: u32, hosts: u32) -> Option<Finding> {
        let estimate = ScanEstimate {
            distinct_ports: ports,
            distinct_hosts: hosts,
        };
        port_scan(
            "192.0.2.44".parse().unwrap(),
            &estimate,
            &PortScanConfig::default(),
            &eth0(),
        )
    }

    #[test]
    fn many_ports_on_one_host() {
        // nmap -sS / -sT against the monitored host: the top 1000 ports.
        let f = scan(1_000, 1).unwrap();
        assert_eq!(
            (f.kind, f.source.to_string()),
            (AlertKind::PortScan, "192.0.2.44".into())
        );
        assert_eq!(
            (f.value, f.threshold, f.unit),
            (1_000.0, 100.0, Unit::Ports)
        );
        assert_eq!(
            f.message,
            "1000 ports across 1 hosts in the last 1m (threshold 100 ports or 20 hosts)"
        );
    }

    #[test]
    fn one_port_on_many_hosts() {
        let f = scan(1, 40).unwrap();
        assert_eq!((f.value, f.threshold, f.unit), (40.0, 20.0, Unit::Hosts));
        // The predecessor's example: 180 ports across 40 hosts; ports are further over.
        assert_eq!(scan(180, 40).unwrap().unit, Unit::Hosts);
        assert_eq!(scan(250, 40).unwrap().unit, Unit::Ports);
    }

    #[test]
    fn ordinary_clients_are_not_scans() {
        assert!(scan(3, 1).is_none()); // ssh, http, https
        assert!(scan(99, 19).is_none());
        assert!(scan(0, 0).is_none());
    }
}

/// Turns the backend's per-epoch scan sketches into estimates over the window.
///
/// The kernel keeps one sketch per source per epoch; an epoch lasts half the window.
/// An estimate joins the current epoch's sketch with the previous epoch's (kept here,
/// as last read), so it always covers between half the window and the whole of it.
#[derive(Clone, Debug)]
pub struct ScanWindow {
    half: std::time::Duration,
    epoch: u64,
    epoch_started: std::time::Instant,
    /// The previous epoch's sketches alone (a whole `SourceCounters` is twice the
    /// size, and under a flood this holds the whole table).
    previous: crate::model::source_list::SourceList<Sketch>,
}

impl ScanWindow {
    /// Epoch 1 starts at `now` (the backend starts in epoch 1).
    pub fn new(window: std::time::Duration, now: std::time::Instant) -> Self {
        Self {
            half: window / 2,
            epoch: 1,
            epoch_started: now,
            previous: crate::model::source_list::SourceList::default(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Distinct ports and hosts per source over the window, from a snapshot's
    /// cumulative per-source counters.
    pub fn estimates(
        &self,
        sources: &crate::model::source_list::SourceList<monitor_common::SourceCounters>,
    ) -> std::collections::HashMap<IpAddr, ScanEstimate> {
        let mut estimator = self.estimator();
        sources
            .iter()
            .filter_map(|(ip, counters)| Some((ip, estimator.estimate(&ip, counters)?)))
            .collect()
    }

    /// Estimates source by source, for sources visited in their lists' order (the
    /// poll's one walk over them).
    pub fn estimator(&self) -> ScanEstimator<'_> {
        ScanEstimator {
            epoch: self.epoch,
            previous: self.previous.cursor(),
        }
    }

    /// When half the window has passed: keeps this epoch's sketches (from `sources`,
    /// just read) as the previous ones and returns the next epoch for the backend.
    pub fn advance(
        &mut self,
        sources: &crate::model::source_list::SourceList<monitor_common::SourceCounters>,
        now: std::time::Instant,
    ) -> Option<u64> {
        if now.duration_since(self.epoch_started) < self.half {
            return None;
        }
        self.previous = sources.filter_map(|_, c| {
            (c.scan_epoch == self.epoch).then_some(Sketch {
                ports: c.scan_ports,
                hosts: c.scan_hosts,
            })
        });
        self.epoch += 1;
        self.epoch_started = now;
        Some(self.epoch)
    }
}

/// [`ScanWindow::estimates`] one source at a time.
pub struct ScanEstimator<'a> {
    epoch: u64,
    /// The previous epoch's sketches, looked up in the sources' order.
    previous: crate::model::source_list::Cursor<'a, Sketch>,
}

impl ScanEstimator<'_> {
    /// Distinct ports and hosts `ip` tried over the window, from its cumulative
    /// counters; `None` for one port and one host at most (never a scan).
    pub fn estimate(
        &mut self,
        ip: &IpAddr,
        counters: &monitor_common::SourceCounters,
    ) -> Option<ScanEstimate> {
        let current = (counters.scan_epoch == self.epoch).then_some(counters);
        let previous = self.previous.seek(ip);
        // One port and one host at most (what each source of a random-source flood
        // shows) estimates to 1 or 0, never reported: skip the merge and the
        // logarithms for it. The sums bound the joined sketch's bits from above.
        let ports = current.map_or(0, |c| ports_bits(&c.scan_ports))
            + previous.map_or(0, |p| ports_bits(&p.ports));
        let hosts = current.map_or(0, |c| c.scan_hosts.count_ones())
            + previous.map_or(0, |p| p.hosts.count_ones());
        if ports <= 1 && hosts <= 1 {
            return None;
        }
        let joined = match (current, previous) {
            (Some(c), Some(p)) => c.merged(p.as_counters(self.epoch)),
            (Some(c), None) => *c,
            (None, Some(p)) => p.as_counters(self.epoch),
            (None, None) => return None,
        };
        let (distinct_ports, distinct_hosts) = joined.scan_estimate();
        (distinct_ports > 1 || distinct_hosts > 1).then_some(ScanEstimate {
            distinct_ports,
            distinct_hosts,
        })
    }
}

/// One source's scan sketch from a past epoch.
#[derive(Clone, Copy, Debug)]
struct Sketch {
    ports: [u64; monitor_common::counters::SCAN_PORT_BITS / 64],
    hosts: u64,
}

impl Sketch {
    /// As counters of `epoch`, so that merging joins it with that epoch's sketch
    /// instead of dropping it as stale.
    fn as_counters(&self, epoch: u64) -> monitor_common::SourceCounters {
        monitor_common::SourceCounters {
            scan_epoch: epoch,
            scan_ports: self.ports,
            scan_hosts: self.hosts,
            ..Default::default()
        }
    }
}

fn ports_bits(ports: &[u64]) -> u32 {
    ports.iter().map(|w| w.count_ones()).sum()
}

#[cfg(test)]
mod window_tests {
    use std::time::{Duration, Instant};

    use monitor_common::{
        SourceCounters,
        builder::{L4, Packet},
        decode,
        decode::TCP_SYN,
    };

    use super::*;

    fn probed(ports: std::ops::Range<u16>, epoch: u64) -> SourceCounters {
        let mut c = SourceCounters::default();
        for port in ports {
            let frame = Packet::ipv4(
                [192, 0, 2, 9],
                [192, 0, 2, 1],
                L4::Tcp {
                    src_port: 50_000,
                    dst_port: port,
                    flags: TCP_SYN,
                },
            )
            .build();
            c.record(&decode(frame.as_slice()), 60, epoch, false);
        }
        c
    }

    #[test]
    fn a_scan_split_across_epochs_is_still_seen_whole() {
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let start = Instant::now();
        let mut window = ScanWindow::new(Duration::from_secs(60), start);
        let first_half = crate::model::source_list::SourceList::from_iter([(ip, probed(1..61, 1))]);
        assert_eq!(window.estimates(&first_half)[&ip].distinct_ports / 10, 6);
        assert_eq!(
            window.advance(&first_half, start + Duration::from_secs(10)),
            None
        );
        assert_eq!(
            window.advance(&first_half, start + Duration::from_secs(30)),
            Some(2)
        );
        // The kernel restarts the sketch in epoch 2; the estimate still spans both.
        let mut second = first_half[&ip];
        second = second.merged(probed(61..121, 2));
        let now = crate::model::source_list::SourceList::from_iter([(ip, second)]);
        let both = window.estimates(&now)[&ip].distinct_ports;
        assert!((105..=135).contains(&both), "{both}");
        // A whole epoch later, the first half is forgotten.
        assert_eq!(
            window.advance(&now, start + Duration::from_secs(60)),
            Some(3)
        );
        let quiet = crate::model::source_list::SourceList::from_iter([(ip, second)]);
        let later = window.estimates(&quiet)[&ip].distinct_ports;
        assert!((50..=70).contains(&later), "{later}");
    }
}
