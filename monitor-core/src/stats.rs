//! Turns two cumulative snapshots into per-interval rates and top sources. Pure: no
//! clock, no I/O, so it is tested on plain values.

use std::{cmp::Reverse, collections::BinaryHeap, net::IpAddr};

use monitor_common::{GlobalCounters, SourceCounters};
use serde::Serialize;

use crate::model::{
    snapshot::{CaptureDrops, Snapshot},
    source_list::SourceList,
};

/// Per-second rates over one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    pub pps: f64,
    pub bytes_per_sec: f64,
    pub bits_per_sec: f64,
    pub tcp_pps: f64,
    pub udp_pps: f64,
    pub icmp_pps: f64,
    pub other_pps: f64,
    pub non_ip_pps: f64,
    pub malformed_pps: f64,
    pub ipv4_pps: f64,
    pub ipv6_pps: f64,
    pub syn_per_sec: f64,
    pub syn_ack_per_sec: f64,
    pub rst_per_sec: f64,
    pub fin_per_sec: f64,
    pub fragments_per_sec: f64,
    /// Frames mitigation dropped (in dry-run: would have dropped).
    pub dropped_pps: f64,
    pub dropped_bits_per_sec: f64,
}

/// One source's traffic over one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceRate {
    pub ip: IpAddr,
    pub pps: f64,
    pub bytes_per_sec: f64,
    pub bits_per_sec: f64,
    pub syn_per_sec: f64,
    pub udp_pps: f64,
    pub icmp_pps: f64,
    /// Cumulative since the source entered the table.
    pub packets: u64,
    pub bytes: u64,
}

/// What mitigation dropped from one source (cumulative).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedSource {
    pub ip: IpAddr,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IntervalStats {
    pub seconds: f64,
    pub totals: GlobalCounters,
    pub rates: Rates,
    pub top_sources: Vec<SourceRate>,
    /// Packets the capture lost since start, for a backend with a buffer (pcap).
    pub capture_drops: Option<CaptureDrops>,
    /// Every source mitigation dropped frames from, most packets first.
    pub dropped_sources: Vec<DroppedSource>,
}

fn per_sec(delta: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    // One decimal is all a rate needs, and it keeps the JSON short.
    (delta as f64 / seconds * 10.0).round() / 10.0
}

pub fn rates(prev: &GlobalCounters, cur: &GlobalCounters, seconds: f64) -> Rates {
    let d = |a: u64, b: u64| per_sec(b.saturating_sub(a), seconds);
    let bytes_per_sec = d(prev.total.bytes, cur.total.bytes);
    Rates {
        pps: d(prev.total.packets, cur.total.packets),
        bytes_per_sec,
        bits_per_sec: bytes_per_sec * 8.0,
        tcp_pps: d(prev.tcp.packets, cur.tcp.packets),
        udp_pps: d(prev.udp.packets, cur.udp.packets),
        icmp_pps: d(prev.icmp.packets, cur.icmp.packets),
        other_pps: d(prev.other.packets, cur.other.packets),
        non_ip_pps: d(prev.non_ip.packets, cur.non_ip.packets),
        malformed_pps: d(prev.malformed.packets, cur.malformed.packets),
        ipv4_pps: d(prev.ipv4.packets, cur.ipv4.packets),
        ipv6_pps: d(prev.ipv6.packets, cur.ipv6.packets),
        syn_per_sec: d(prev.syn, cur.syn),
        syn_ack_per_sec: d(prev.syn_ack, cur.syn_ack),
        rst_per_sec: d(prev.rst, cur.rst),
        fin_per_sec: d(prev.fin, cur.fin),
        fragments_per_sec: d(prev.fragments, cur.fragments),
        dropped_pps: d(prev.dropped.packets, cur.dropped.packets),
        dropped_bits_per_sec: d(prev.dropped.bytes, cur.dropped.bytes) * 8.0,
    }
}

/// Growth of a source's counters since the previous snapshot. A total lower than
/// before means part of the source's counts left the per-source table: its entry was
/// replaced by more recently flushed sources (an idle source, or the older part of a
/// busy one whose newer counts wait in a CPU's cache). Counting all of the new total
/// as grown would then read a busy source's counts since it last changed cache slot
/// (hours, possibly) as one interval's: a false flood, a ban of a legitimate client.
/// So it counts nothing for that interval, and from the next on grows from the new
/// total.
pub(crate) fn source_delta(prev: Option<&SourceCounters>, cur: &SourceCounters) -> SourceCounters {
    // What the counts grew from: the previous counts, nothing for a new source, and
    // the current counts themselves (no growth) for one whose total fell.
    let from = match prev {
        Some(p) if p.packets <= cur.packets => *p,
        Some(_) => *cur,
        None => SourceCounters::default(),
    };
    SourceCounters {
        packets: cur.packets - from.packets,
        bytes: cur.bytes.saturating_sub(from.bytes),
        syn: cur.syn.saturating_sub(from.syn),
        udp: cur.udp.saturating_sub(from.udp),
        icmp: cur.icmp.saturating_sub(from.icmp),
        blocklisted: cur.blocklisted.saturating_sub(from.blocklisted),
        // The scan sketch is not a count: the current one stands.
        ..*cur
    }
}

/// The `n` sources that sent the most packets in the interval (ties: more bytes,
/// then the lower address, so the order is stable).
pub fn top_sources(
    prev: &SourceList<SourceCounters>,
    cur: &SourceList<SourceCounters>,
    seconds: f64,
    n: usize,
) -> Vec<SourceRate> {
    // Only what ranks them is kept per source; a flood has 65,536 of them, and only
    // the first `n` are sorted. One walk down both lists (the table's order).
    let mut active: Vec<(u64, u64, IpAddr, &SourceCounters, Option<&SourceCounters>)> = cur
        .join(prev)
        .map(|(ip, c, before)| {
            let delta = source_delta(before, c);
            (delta.packets, delta.bytes, ip, c, before)
        })
        .filter(|(packets, ..)| *packets > 0)
        .collect();
    let rank = |a: &(u64, u64, IpAddr, _, _), b: &(u64, u64, IpAddr, _, _)| {
        (b.0, b.1).cmp(&(a.0, a.1)).then(a.2.cmp(&b.2))
    };
    if n == 0 {
        return Vec::new();
    }
    if active.len() > n {
        active.select_nth_unstable_by(n - 1, rank);
        active.truncate(n);
    }
    active.sort_unstable_by(rank);
    active
        .into_iter()
        .map(|(_, _, ip, total, before)| {
            source_rate(ip, &source_delta(before, total), total, seconds)
        })
        .collect()
}

/// One source's line in the top list: its rates from its `delta` over the interval,
/// its `total` since it entered the table.
fn source_rate(
    ip: IpAddr,
    delta: &SourceCounters,
    total: &SourceCounters,
    seconds: f64,
) -> SourceRate {
    let bytes_per_sec = per_sec(delta.bytes, seconds);
    SourceRate {
        ip,
        pps: per_sec(delta.packets, seconds),
        bytes_per_sec,
        bits_per_sec: bytes_per_sec * 8.0,
        syn_per_sec: per_sec(delta.syn, seconds),
        udp_pps: per_sec(delta.udp, seconds),
        icmp_pps: per_sec(delta.icmp, seconds),
        packets: total.packets,
        bytes: total.bytes,
    }
}

/// How [`top_sources`] ranks: more packets, then more bytes, then the lower address.
type Rank = (u64, u64, Reverse<IpAddr>);

/// A source [`TopSources`] keeps, with its delta: ordered by rank alone.
#[derive(Clone, Copy, Debug)]
struct Kept {
    rank: Rank,
    delta: SourceCounters,
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank.cmp(&other.rank)
    }
}

/// [`top_sources`] fed one source at a time, from deltas already computed: the poll
/// computes each source's delta once, for detection, and offers it here in the same
/// pass, so the stats line costs no second pass (and lookup) over 65,536 sources.
/// Keeps only the best `n` seen so far.
#[derive(Clone, Debug, Default)]
pub struct TopSources {
    n: usize,
    /// The worst kept on top, where a better one replaces it.
    kept: BinaryHeap<Reverse<Kept>>,
}

impl TopSources {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            kept: BinaryHeap::with_capacity(n),
        }
    }

    /// How many sources it keeps at most.
    pub fn limit(&self) -> usize {
        self.n
    }

    /// Forgets the sources offered so far.
    pub fn clear(&mut self) {
        self.kept.clear();
    }

    /// A source and its growth in the interval (one that sent nothing is left out).
    pub fn offer(&mut self, ip: IpAddr, delta: &SourceCounters) {
        if self.n == 0 || delta.packets == 0 {
            return;
        }
        let rank = (delta.packets, delta.bytes, Reverse(ip));
        if self.kept.len() < self.n {
            self.kept.push(Reverse(Kept {
                rank,
                delta: *delta,
            }));
        } else if let Some(mut worst) = self.kept.peek_mut()
            && rank > worst.0.rank
        {
            *worst = Reverse(Kept {
                rank,
                delta: *delta,
            });
        }
    }

    /// The sources kept, best first, with their rates over the `seconds` of the
    /// interval; `cur` has their cumulative counters.
    pub fn rates(&self, cur: &SourceList<SourceCounters>, seconds: f64) -> Vec<SourceRate> {
        let mut ranked: Vec<&Kept> = self.kept.iter().map(|kept| &kept.0).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .filter_map(|kept| {
                let ip = kept.rank.2.0;
                Some(source_rate(ip, &kept.delta, cur.get(&ip)?, seconds))
            })
            .collect()
    }
}

pub fn interval(prev: &Snapshot, cur: &Snapshot, top: usize) -> IntervalStats {
    interval_with(prev, cur, |seconds| {
        top_sources(&prev.sources, &cur.sources, seconds, top)
    })
}

/// [`interval`] with the top sources from `top`, which gets the interval's seconds.
pub fn interval_with(
    prev: &Snapshot,
    cur: &Snapshot,
    top: impl FnOnce(f64) -> Vec<SourceRate>,
) -> IntervalStats {
    let seconds = cur.taken.duration_since(prev.taken).as_secs_f64();
    IntervalStats {
        seconds,
        totals: cur.global,
        rates: rates(&prev.global, &cur.global, seconds),
        top_sources: top(seconds),
        capture_drops: cur.capture_drops,
        dropped_sources: dropped_sources(cur),
    }
}

fn dropped_sources(cur: &Snapshot) -> Vec<DroppedSource> {
    let mut dropped: Vec<DroppedSource> = cur
        .dropped
        .iter()
        .map(|(ip, t)| DroppedSource {
            ip: *ip,
            packets: t.packets,
            bytes: t.bytes,
        })
        .collect();
    dropped.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.ip.cmp(&b.ip)));
    dropped
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the values asserted are exact in binary (whole counts over exact intervals); a tolerance would loosen the tests"
)]
mod tests {
    use super::*;

    fn src(packets: u64, bytes: u64, syn: u64) -> SourceCounters {
        SourceCounters {
            packets,
            bytes,
            syn,
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_deltas_over_the_interval() {
        let mut prev = GlobalCounters::default();
        prev.total.packets = 1_000;
        prev.total.bytes = 64_000;
        prev.syn = 10;
        let mut cur = prev;
        cur.total.packets = 1_500;
        cur.total.bytes = 96_000;
        cur.tcp.packets = 400;
        cur.syn = 210;
        let r = rates(&prev, &cur, 0.5);
        assert_eq!(r.pps, 1_000.0);
        assert_eq!(r.bytes_per_sec, 64_000.0);
        assert_eq!(r.bits_per_sec, 512_000.0);
        assert_eq!(r.tcp_pps, 800.0);
        assert_eq!(r.syn_per_sec, 400.0);
        assert_eq!(rates(&prev, &cur, 0.0).pps, 0.0);
    }

    #[test]
    fn top_sources_rank_by_interval_packets_not_totals() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "2001:db8::3".parse().unwrap();
        let prev = SourceList::from_iter([(a, src(1_000_000, 0, 0)), (b, src(10, 0, 0))]);
        let cur = SourceList::from_iter([
            (a, src(1_000_010, 0, 0)), // big total, quiet now
            (b, src(510, 30_000, 500)),
            (c, src(100, 6_400, 0)), // new this interval
        ]);
        let top = top_sources(&prev, &cur, 1.0, 2);
        assert_eq!(top.len(), 2);
        assert_eq!(
            (top[0].ip, top[0].pps, top[0].syn_per_sec),
            (b, 500.0, 500.0)
        );
        assert_eq!((top[1].ip, top[1].pps, top[1].packets), (c, 100.0, 100));
    }

    #[test]
    fn top_sources_offered_one_at_a_time_are_the_whole_lists_top() {
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let (mut prev, mut cur) = (Vec::new(), Vec::new());
        for i in 0..500u32 {
            let before = src(1_000 + u64::from(i % 7) * 10, 60_000, 0);
            prev.push((ip(i), before));
            let now = match i % 5 {
                0 => before,         // idle
                1 => src(3, 180, 3), // evicted and back
                _ => src(
                    // Many ties on packets and bytes: the address decides.
                    before.packets + u64::from(i % 13),
                    before.bytes + u64::from(i % 3) * 100,
                    1,
                ),
            };
            cur.push((ip(i), now));
        }
        for i in 500..600u32 {
            let packets = u64::from(i % 4); // new, some without a packet yet
            cur.push((ip(i), src(packets, packets * 64, 0)));
        }
        let prev: SourceList<SourceCounters> = prev.into_iter().collect();
        let cur: SourceList<SourceCounters> = cur.into_iter().collect();
        assert_eq!(top_sources(&prev, &cur, 0.5, 37).len(), 37);
        for n in [0, 1, 5, 37, 1_000] {
            let mut top = TopSources::new(n);
            for (ip, c) in cur.iter() {
                top.offer(ip, &source_delta(prev.get(&ip), c));
            }
            assert_eq!(
                top.rates(&cur, 0.5),
                top_sources(&prev, &cur, 0.5, n),
                "top {n}"
            );
            top.clear();
            assert!(top.rates(&cur, 0.5).is_empty());
        }
    }

    #[test]
    fn a_source_whose_total_went_down_counts_nothing_then_grows_from_there() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let prev = SourceList::from_iter([(a, src(5_000, 0, 0))]);
        // Part of its counts left the table: not 7 new packets, nor 5,000 gone.
        let cur = SourceList::from_iter([(a, src(7, 0, 0))]);
        assert!(top_sources(&prev, &cur, 1.0, 5).is_empty());
        let next = SourceList::from_iter([(a, src(19, 0, 0))]);
        assert_eq!(top_sources(&cur, &next, 1.0, 5)[0].pps, 12.0);
        let idle = SourceList::from_iter([(a, src(5_000, 0, 0))]);
        assert!(top_sources(&prev, &idle, 1.0, 5).is_empty());
    }
}
