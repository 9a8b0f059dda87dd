//! The detectors, as pure functions of one interval's counters (no clock, no I/O), and
//! the [`Detector`] that runs them all and applies the address lists. What it returns
//! are findings; `alert::AlertTracker` decides which become alerts.
//!
//! Per interval: `DetectInput::from_snapshots(&prev, &cur)` (plus what else the backend
//! supplies) -> `Detector::evaluate` -> `AlertTracker::update(findings, now)`.

use std::{collections::HashMap, net::IpAddr};

use monitor_common::{GlobalCounters, SourceCounters, SourceKey, counters::Tally};

use crate::{
    config::{Config, DetectionConfig},
    model::{
        alert::{AlertKind, AlertSource, Finding, Target},
        snapshot::Snapshot,
        source_list::SourceList,
    },
};

pub mod download;
pub mod flood;
pub mod lists;
pub mod scan;
pub mod spike;

pub use download::FlowRecord;
use flood::{HostShares, SourceShare, SourceTraffic};
pub use lists::{BlocklistHit, Direction, Lists};
pub use scan::{ScanEstimate, ScanWindow};

use crate::model::cidr::is_local_network;

/// One interval of traffic, as the detectors need it. Counters are deltas over the
/// interval; flows are cumulative.
#[derive(Clone, Debug, Default)]
pub struct DetectInput {
    /// Length of the window the counter deltas cover, which rates divide by;
    /// nothing is detected when it is not above zero.
    pub interval_secs: f64,
    /// Time since the previous evaluation: what learning and "for how long" checks
    /// advance by. Equal to `interval_secs` unless windows overlap.
    pub elapsed_secs: f64,
    /// Host-wide counters grown during the interval.
    pub host: GlobalCounters,
    /// Per-source counters grown during the interval (sources that sent nothing may be
    /// left out).
    pub sources: SourceList<SourceCounters>,
    /// SYN-ACKs the host sent to each source during the interval, only the sources
    /// it sent some to (a source not in it got none) and, when the poll fills it, that
    /// sent SYNs fast enough for the detector to compare ([`Detector::wants_syn_acks`]). `None` without an egress hook:
    /// the SYN:SYN-ACK ratio check is then off. Under a random-source flood a map of
    /// every source (mostly zeros) cost as much as the deltas themselves.
    pub syn_ack_sent: Option<SourceList<u64>>,
    /// Distinct ports and hosts each source tried over the port-scan window.
    pub scans: HashMap<IpAddr, ScanEstimate>,
    /// Flows that carried inbound payload during the interval.
    pub flows: Vec<FlowRecord>,
    /// Traffic from or to listed addresses that the kernel matched (its LPM trie). The
    /// per-source counters are matched here too, so this may stay empty.
    pub blocklist_hits: Vec<BlocklistHit>,
}

impl DetectInput {
    /// The counter deltas between two snapshots; the rest (scans, flows, hits) is for
    /// the caller to add when the backend supplies it.
    pub fn from_snapshots(prev: &Snapshot, cur: &Snapshot) -> Self {
        let mut input = Self::default();
        input.refill(prev, cur, |_| true, |_, _, _| {});
        input
    }

    /// [`from_snapshots`](Self::from_snapshots) into this input, reusing its memory:
    /// under a flood the per-source deltas are megabytes, allocated and faulted in anew
    /// every poll otherwise. `scans` is left as it is. `each` sees every source of
    /// `cur` with its cumulative counters and its delta, in the same walk (a walk over
    /// 65,536 sources costs more than the work done on each).
    /// `syn_acks_wanted` says, from a source's delta, whether to look its SYN-ACKs up
    /// ([`Detector::wants_syn_acks`]): under a random-source flood the host answers,
    /// the detector compares none of them.
    pub fn refill(
        &mut self,
        prev: &Snapshot,
        cur: &Snapshot,
        syn_acks_wanted: impl Fn(&SourceCounters) -> bool,
        mut each: impl FnMut(IpAddr, &SourceCounters, &SourceCounters),
    ) {
        // One walk down both lists (they share the table's order).
        let sources = &mut self.sources;
        sources.clear(cur.sources.sets());
        sources.reserve(cur.sources.len());
        // The kernel's blocklist matches: sources while listed, and listed destinations.
        let blocklist_hits = &mut self.blocklist_hits;
        blocklist_hits.clear();
        for (ip, counters, before) in cur.sources.join(&prev.sources) {
            let delta = crate::stats::source_delta(before, counters);
            each(ip, counters, &delta);
            if delta.packets == 0 {
                continue;
            }
            if delta.blocklisted > 0 {
                blocklist_hits.push(BlocklistHit {
                    addr: ip,
                    direction: Direction::FromListed,
                    packets: delta.blocklisted,
                    bytes: delta.bytes,
                });
            }
            // In `cur`'s order, which is the list's.
            sources.push(SourceKey::from_ip(ip), delta);
        }
        for (ip, total) in &cur.listed_destinations {
            let before = prev
                .listed_destinations
                .get(ip)
                .copied()
                .unwrap_or_default();
            let packets = total.packets.saturating_sub(before.packets);
            if packets > 0 {
                blocklist_hits.push(BlocklistHit {
                    addr: *ip,
                    direction: Direction::ToListed,
                    packets,
                    bytes: total.bytes.saturating_sub(before.bytes),
                });
            }
        }
        // Large flows while they grow; one that stops growing is left out (its alert
        // then ends).
        self.flows.clear();
        self.flows.extend(
            cur.large_flows
                .iter()
                .filter(|flow| {
                    prev.large_flows
                        .iter()
                        .find(|p| {
                            p.src == flow.src && p.dst == flow.dst && p.protocol == flow.protocol
                        })
                        .is_none_or(|p| p.payload_bytes < flow.payload_bytes)
                })
                .map(|flow| FlowRecord {
                    key: crate::model::alert::FlowKey {
                        protocol: flow.protocol,
                        src: flow.src,
                        dst: flow.dst,
                    },
                    inbound_payload_bytes: flow.payload_bytes,
                    first_seen: flow.first_seen,
                    last_seen: flow.last_grew,
                }),
        );
        // SYN-ACKs sent back to each source that sent something, when egress is seen:
        // the sources' list walked once more, the SYN-ACK lists with it.
        match (&prev.syn_acks_sent, &cur.syn_acks_sent) {
            (Some(before), Some(now)) => {
                let sent = self.syn_ack_sent.get_or_insert_with(SourceList::default);
                // Filled in the sources' order, the SYN-ACK lists walked along with
                // them (see `cursor_along`).
                sent.clear(sources.sets());
                let (mut now, mut before) = (
                    now.cursor_along(sources.sets()),
                    before.cursor_along(sources.sets()),
                );
                for (ip, delta) in sources.iter() {
                    if !syn_acks_wanted(delta) {
                        continue;
                    }
                    let Some(&total) = now.seek(&ip) else {
                        continue;
                    };
                    let grown = syn_acks_grown(before.seek(&ip).copied(), total);
                    if grown > 0 {
                        sent.push(SourceKey::from_ip(ip), grown);
                    }
                }
            }
            _ => self.syn_ack_sent = None,
        }
        self.interval_secs = cur.taken.duration_since(prev.taken).as_secs_f64();
        self.elapsed_secs = self.interval_secs;
        self.host = counters_delta(&prev.global, &cur.global);
    }
}

/// SYN-ACKs sent to a source since `earlier`. A total lower than before means the
/// table forgot the source in between (replaced by a more recent one) and counts it
/// afresh: all of it is then new. Zero instead would read as "no SYN-ACK sent back"
/// and make a legitimate client look like a SYN flood to the ratio check.
fn syn_acks_grown(earlier: Option<u64>, total: u64) -> u64 {
    match earlier {
        Some(before) if before <= total => total - before,
        _ => total,
    }
}

pub fn counters_delta(prev: &GlobalCounters, cur: &GlobalCounters) -> GlobalCounters {
    let tally = |p: Tally, c: Tally| Tally {
        packets: c.packets.saturating_sub(p.packets),
        bytes: c.bytes.saturating_sub(p.bytes),
    };
    GlobalCounters {
        total: tally(prev.total, cur.total),
        tcp: tally(prev.tcp, cur.tcp),
        udp: tally(prev.udp, cur.udp),
        icmp: tally(prev.icmp, cur.icmp),
        other: tally(prev.other, cur.other),
        non_ip: tally(prev.non_ip, cur.non_ip),
        malformed: tally(prev.malformed, cur.malformed),
        ipv4: tally(prev.ipv4, cur.ipv4),
        ipv6: tally(prev.ipv6, cur.ipv6),
        syn: cur.syn.saturating_sub(prev.syn),
        syn_ack: cur.syn_ack.saturating_sub(prev.syn_ack),
        rst: cur.rst.saturating_sub(prev.rst),
        fin: cur.fin.saturating_sub(prev.fin),
        fragments: cur.fragments.saturating_sub(prev.fragments),
        dropped: tally(prev.dropped, cur.dropped),
    }
}

/// Runs every detector on each interval. Holds the only state detection needs: the
/// spike baseline.
#[derive(Clone, Debug)]
pub struct Detector {
    config: DetectionConfig,
    exclude_private_from_burst: bool,
    lists: Lists,
    /// Names what is attacked in alerts: the monitored interface.
    target: Target,
    spike: spike::SpikeDetector,
}

impl Detector {
    pub fn new(config: &Config, lists: Lists, target: impl Into<String>) -> Self {
        Self {
            config: config.detection.clone(),
            exclude_private_from_burst: config.lists.exclude_private_from_burst,
            lists,
            target: Target::Interface(target.into()),
            spike: spike::SpikeDetector::new(),
        }
    }

    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    /// Whether a source that grew by `delta` over `seconds` is checked against the
    /// SYN-ACKs the host sent it: only one whose SYN rate reaches a SYN threshold.
    pub fn wants_syn_acks(&self, delta: &SourceCounters, seconds: f64) -> bool {
        flood::syn_acks_matter(delta, seconds, &self.config.per_source)
    }

    /// Everything wrong in this interval, sorted by kind, source and target.
    /// Allowlisted sources are skipped by every detector.
    pub fn evaluate(&mut self, input: &DetectInput) -> Vec<Finding> {
        let seconds = input.interval_secs;
        if seconds.is_nan() || seconds <= 0.0 {
            return Vec::new();
        }
        let target = &self.target;
        let allowlisted = |ip: IpAddr| self.lists.allowlist.contains(ip);
        let mut found = Vec::new();

        let mut shares = HostShares::default();
        // Looked up in the sources' order, one walk down both lists.
        let mut syn_ack_sent = input
            .syn_ack_sent
            .as_ref()
            .map(|sent| sent.cursor_along(input.sources.sets()));
        for (ip, delta) in input.sources.iter() {
            let ip = ip.to_canonical();
            let share = SourceShare {
                delta,
                allowlisted: allowlisted(ip),
                burst_exempt: self.exclude_private_from_burst && is_local_network(ip),
                named: false,
            };
            if share.allowlisted || delta.packets == 0 {
                shares.add(&share);
                continue;
            }
            let traffic = SourceTraffic {
                ip,
                delta,
                // Looked up only where it can change a finding (under a random-source
                // flood the host answers, no source).
                syn_ack_sent: syn_ack_sent.as_mut().map(|sent| {
                    if flood::syn_acks_matter(delta, seconds, &self.config.per_source) {
                        sent.seek(&ip).copied().unwrap_or(0)
                    } else {
                        0
                    }
                }),
                burst_exempt: share.burst_exempt,
            };
            let floods = flood::source_floods(&traffic, seconds, &self.config.per_source, target);
            shares.add(&SourceShare {
                named: !floods.is_empty(),
                ..share
            });
            found.extend(floods);
            if let Some(entry) = self.lists.blocklist.longest_match(ip) {
                let hit = BlocklistHit {
                    addr: ip,
                    direction: Direction::FromListed,
                    packets: delta.packets,
                    bytes: delta.bytes,
                };
                found.push(lists::blocklisted(&hit, Some(entry), target));
            }
        }
        found.extend(flood::host_floods_summed(
            &input.host,
            &shares,
            seconds,
            &self.config.host,
            target,
        ));

        for (ip, estimate) in &input.scans {
            if !allowlisted(*ip) {
                found.extend(scan::port_scan(
                    ip.to_canonical(),
                    estimate,
                    &self.config.port_scan,
                    target,
                ));
            }
        }
        // A scan is unanswered SYNs too: a source reported as scanning is not also a
        // SYN flood by the ratio alone (its SYN rate under the SYN threshold).
        let scanners: Vec<AlertSource> = found
            .iter()
            .filter(|f| f.kind == AlertKind::PortScan)
            .map(|f| f.source)
            .collect();
        let syn_threshold = self.config.per_source.syn_per_sec.get() as f64;
        found.retain(|f| {
            !(f.kind == AlertKind::SynFlood
                && f.threshold < syn_threshold
                && scanners.contains(&f.source))
        });
        for flow in &input.flows {
            if !allowlisted(flow.key.src.ip()) {
                found.extend(download::large_download(flow, &self.config.large_download));
            }
        }
        for hit in &input.blocklist_hits {
            if !allowlisted(hit.addr) {
                let entry = self.lists.blocklist.longest_match(hit.addr);
                found.push(lists::blocklisted(hit, entry, target));
            }
        }

        let flood_active = found.iter().any(|f| f.kind.is_volume());
        let host = &input.host.total;
        found.extend(self.spike.observe(
            host.packets as f64 / seconds,
            host.bytes as f64 / seconds,
            input.elapsed_secs,
            flood_active,
            &self.config.spike,
            target,
        ));

        found.sort_by(|a, b| (a.kind, a.source, &a.target).cmp(&(b.kind, b.source, &b.target)));
        found
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the values asserted are exact in binary (whole counts over exact intervals); a tolerance would loosen the tests"
)]
mod tests;

/// What the detectors' tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::model::alert::Target;

    /// The monitored interface of every test.
    pub(crate) fn eth0() -> Target {
        Target::Interface("eth0".into())
    }
}
