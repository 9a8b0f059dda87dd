//! The XDP program's maps, kept in userspace for the backends that see packets
//! without the kernel's help (libpcap). Each packet is decoded by
//! `monitor_common::decode` and counted by `GlobalCounters::record` and
//! `SourceCounters::record`, the code the XDP program runs, into tables of the same
//! sizes and the same least-recently-seen eviction; so a `Snapshot` means the same
//! thing whichever backend took it, and every detector works unchanged.

use std::{
    collections::HashMap,
    net::SocketAddr,
    num::NonZeroUsize,
    time::{Instant, SystemTime},
};

use lru::LruCache;
use monitor_common::{
    Class, Frame, GlobalCounters, PacketInfo, SourceCounters, SourceKey,
    counters::{FlowKey, MIN_FLOW_PAYLOAD, Tally},
    decode::decode_ip,
    limits::{MAX_FLOWS, MAX_LISTED_DESTINATIONS},
    view::PacketFilter,
};

use super::QUIET_FLOW;
use crate::model::{
    capture::CaptureTarget,
    cidr::CidrSet,
    snapshot::{FlowTotals, Snapshot},
    source_list::SourceList,
};

/// A captured frame: `len` bytes on the wire, of which `data` holds the first (the
/// capture's snap length). The decoder bounds its reads by `data` and takes lengths
/// from `len`, so a payload beyond the snap length still counts, as at the XDP hook.
pub struct SnappedFrame<'a> {
    pub data: &'a [u8],
    pub len: usize,
}

impl Frame for SnappedFrame<'_> {
    fn len(&self) -> usize {
        self.len.max(self.data.len())
    }

    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.data.read::<N>(offset)
    }
}

/// One source's counters, with the blocklist's verdict on it (looked up once, as the
/// XDP program's source cache does).
#[derive(Clone, Copy, Debug)]
struct SourceEntry {
    counters: SourceCounters,
    listed: bool,
}

/// One flow's inbound payload.
#[derive(Clone, Copy, Debug)]
struct FlowEntry {
    payload_bytes: u64,
    packets: u64,
    first_seen: SystemTime,
    last_grew: SystemTime,
    last_grew_at: Instant,
}

/// What the counting needs besides the packets.
#[derive(Clone, Debug)]
pub struct CountingSetup {
    pub max_sources: NonZeroUsize,
    pub blocklist: CidrSet,
    /// Inbound payload at which a flow is a large download.
    pub large_flow_bytes: u64,
    /// `--filter`: only the IP packets it passes are counted (as in the XDP program).
    pub filter: Option<PacketFilter>,
}

/// What counting one frame found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// The decoded packet, when it was an IP packet that passed the filter (what the
    /// packet log shows); `None` for a frame the filter refused or that is not IP.
    pub packet: Option<PacketInfo>,
    /// The captures it belongs to: its source's, and an every-source one.
    pub captures: [Option<u32>; 2],
}

/// The counters: what the XDP program's maps hold, filled by [`Counters::count`].
pub struct Counters {
    global: GlobalCounters,
    sources: LruCache<SourceKey, SourceEntry>,
    listed_destinations: LruCache<SourceKey, Tally>,
    flows: LruCache<FlowKey, FlowEntry>,
    syn_acks_sent: LruCache<SourceKey, u64>,
    scan_epoch: u64,
    blocklist: CidrSet,
    large_flow_bytes: u64,
    filter: Option<PacketFilter>,
    /// Sources being captured, each with its capture id; `None` is every source.
    capture_targets: HashMap<CaptureTarget, u32>,
    /// The order of the snapshots' source lists (`SourceList`): the XDP table's.
    list_sets: u64,
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl Counters {
    pub fn new(setup: &CountingSetup) -> Self {
        Self {
            global: GlobalCounters::default(),
            sources: LruCache::new(setup.max_sources),
            listed_destinations: LruCache::new(cap(MAX_LISTED_DESTINATIONS as usize)),
            flows: LruCache::new(cap(MAX_FLOWS as usize)),
            syn_acks_sent: LruCache::new(setup.max_sources),
            // As the XDP backend: epoch 1 from the start, so zeroed sketches are stale.
            scan_epoch: 1,
            blocklist: setup.blocklist.clone(),
            large_flow_bytes: setup.large_flow_bytes,
            filter: setup.filter,
            capture_targets: HashMap::new(),
            list_sets: monitor_common::source_table::source_table_sets(
                u32::try_from(setup.max_sources.get()).unwrap_or(u32::MAX),
            ),
        }
    }

    /// Counts one incoming frame, as the XDP program does: a filter, when set, decides
    /// first whether the frame counts at all, and passes IP packets only.
    pub fn count(&mut self, frame: &SnappedFrame<'_>, now: SystemTime) -> Counted {
        let len = frame.len() as u64;
        let info = match decode_ip(frame) {
            Ok(info) => info,
            Err(class) => {
                if self.filter.is_none() {
                    self.global.record(&PacketInfo::without_ip(class), len);
                }
                return Counted::default();
            }
        };
        if self.filter.is_some_and(|filter| !filter.matches(&info)) {
            return Counted::default();
        }
        self.global.record(&info, len);
        let key = SourceKey { addr: info.src };
        let captures = if self.capture_targets.is_empty() {
            [None, None]
        } else {
            [
                self.capture_targets.get(&Some(key.ip())).copied(),
                self.capture_targets.get(&None).copied(),
            ]
        };
        let epoch = self.scan_epoch;
        let blocklist = &self.blocklist;
        let entry = self.sources.get_or_insert_mut(key, || SourceEntry {
            counters: SourceCounters::default(),
            listed: !blocklist.is_empty() && blocklist.contains(key.ip()),
        });
        entry.counters.record(&info, len, epoch, entry.listed);
        let dst = SourceKey { addr: info.dst };
        if !self.blocklist.is_empty() && self.blocklist.contains(dst.ip()) {
            self.listed_destinations
                .get_or_insert_mut(dst, Tally::default)
                .add(len);
        }
        if self.large_flow_bytes != 0
            && matches!(info.class(), Class::Tcp | Class::Udp)
            && info.payload_len() >= MIN_FLOW_PAYLOAD
        {
            self.follow_flow(&info, now);
        }
        Counted {
            packet: Some(info),
            captures,
        }
    }

    fn follow_flow(&mut self, info: &PacketInfo, now: SystemTime) {
        let payload = u64::from(info.payload_len());
        let flow = self
            .flows
            .get_or_insert_mut(FlowKey::of(info), || FlowEntry {
                payload_bytes: 0,
                packets: 0,
                first_seen: now,
                last_grew: now,
                last_grew_at: Instant::now(),
            });
        flow.payload_bytes += payload;
        flow.packets += 1;
        // The clock is read only for flows past the threshold: those are reported.
        if flow.payload_bytes >= self.large_flow_bytes {
            flow.last_grew = now;
            flow.last_grew_at = Instant::now();
        }
    }

    /// Counts a frame the host sent: only its SYN-ACKs matter (the SYN:SYN-ACK ratio),
    /// as the XDP backend's egress classifier counts them.
    pub fn count_sent(&mut self, frame: &SnappedFrame<'_>) {
        let info = monitor_common::decode(frame);
        if info.is_syn_ack() {
            *self
                .syn_acks_sent
                .get_or_insert_mut(SourceKey { addr: info.dst }, || 0) += 1;
        }
    }

    pub fn set_scan_epoch(&mut self, epoch: u64) {
        self.scan_epoch = epoch;
    }

    pub fn set_capture_target(&mut self, target: CaptureTarget, id: Option<u32>) {
        match id {
            Some(id) => self.capture_targets.insert(target, id),
            None => self.capture_targets.remove(&target),
        };
    }

    /// The counters now, as a snapshot (`syn_acks_sent` only when sent frames are
    /// counted).
    pub fn snapshot(&self, taken: Instant, with_syn_acks: bool) -> Snapshot {
        let large_flows = self
            .flows
            .iter()
            .filter(|(_, flow)| {
                flow.payload_bytes >= self.large_flow_bytes
                    && taken.saturating_duration_since(flow.last_grew_at) < QUIET_FLOW
            })
            .map(|(key, flow)| flow_totals(key, flow))
            .collect();
        Snapshot {
            taken,
            global: self.global,
            sources: SourceList::from_unordered(
                self.list_sets,
                self.sources
                    .iter()
                    .map(|(key, entry)| (*key, entry.counters)),
                |sum, more| *sum = sum.merged(more),
            ),
            listed_destinations: self
                .listed_destinations
                .iter()
                .map(|(key, tally)| (key.ip(), *tally))
                .collect(),
            large_flows,
            syn_acks_sent: with_syn_acks.then(|| {
                SourceList::from_unordered(
                    self.list_sets,
                    self.syn_acks_sent.iter().map(|(key, sent)| (*key, *sent)),
                    |sum, more| *sum += more,
                )
            }),
            capture_drops: None,
            dropped: HashMap::new(),
        }
    }
}

fn flow_totals(key: &FlowKey, flow: &FlowEntry) -> FlowTotals {
    let ip = |addr| SourceKey { addr }.ip();
    FlowTotals {
        protocol: key.protocol,
        src: SocketAddr::new(ip(key.src), key.src_port),
        dst: SocketAddr::new(ip(key.dst), key.dst_port),
        payload_bytes: flow.payload_bytes,
        packets: flow.packets,
        first_seen: flow.first_seen,
        last_grew: flow.last_grew,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use monitor_common::builder::{L4, Packet};

    use super::*;

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;

    fn tcp(src: [u8; 4], dst: [u8; 4], flags: u8) -> Vec<u8> {
        let l4 = L4::Tcp {
            src_port: 40_000,
            dst_port: 80,
            flags,
        };
        Packet::ipv4(src, dst, l4).build()
    }

    fn udp(src: [u8; 4], dst: [u8; 4], payload: usize) -> Vec<u8> {
        let l4 = L4::Udp {
            src_port: 40_000,
            dst_port: 53,
        };
        Packet::ipv4(src, dst, l4).payload(payload).build()
    }

    fn setup(blocklist: &[&str]) -> CountingSetup {
        CountingSetup {
            max_sources: cap(4),
            blocklist: CidrSet::new(blocklist.iter().map(|c| c.parse().unwrap())),
            large_flow_bytes: 1_000,
            filter: None,
        }
    }

    fn counted(counters: &mut Counters, frame: &[u8]) -> Counted {
        counters.count(
            &SnappedFrame {
                data: frame,
                len: frame.len(),
            },
            SystemTime::now(),
        )
    }

    fn count(counters: &mut Counters, frame: &[u8]) -> [Option<u32>; 2] {
        counted(counters, frame).captures
    }

    #[test]
    fn frames_are_counted_as_the_xdp_program_counts_them() {
        let mut counters = Counters::new(&setup(&["192.0.2.9/32"]));
        let syn = tcp([192, 0, 2, 9], [10, 0, 0, 1], SYN);
        let udp = udp([10, 0, 0, 2], [192, 0, 2, 9], 200);
        count(&mut counters, &syn);
        count(&mut counters, &udp);
        count(&mut counters, &[0u8; 10]);
        let snap = counters.snapshot(Instant::now(), false);
        let g = snap.global;
        assert_eq!((g.total.packets, g.tcp.packets, g.udp.packets), (3, 1, 1));
        assert_eq!((g.syn, g.malformed.packets), (1, 1));
        assert_eq!(g.total.bytes, (syn.len() + udp.len() + 10) as u64);
        let attacker = snap.sources[&"192.0.2.9".parse::<IpAddr>().unwrap()];
        assert_eq!((attacker.syn, attacker.blocklisted), (1, 1));
        assert_eq!(attacker.scan_epoch, 1);
        let to_listed = snap.listed_destinations[&"192.0.2.9".parse::<IpAddr>().unwrap()];
        assert_eq!(to_listed.packets, 1);
        assert!(snap.syn_acks_sent.is_none());
    }

    #[test]
    fn a_snapped_frame_counts_its_whole_length() {
        let mut counters = Counters::new(&setup(&[]));
        let udp = udp([10, 0, 0, 2], [10, 0, 0, 1], 1_400);
        counters.count(
            &SnappedFrame {
                data: &udp[..100],
                len: udp.len(),
            },
            SystemTime::now(),
        );
        let snap = counters.snapshot(Instant::now(), false);
        assert_eq!(snap.global.udp.bytes, udp.len() as u64);
        // 1,400 bytes of payload: past the 1,000-byte threshold, a large flow.
        assert_eq!(snap.large_flows.len(), 1);
        assert_eq!(snap.large_flows[0].payload_bytes, 1_400);
    }

    #[test]
    fn the_least_recently_seen_source_makes_room() {
        let mut counters = Counters::new(&setup(&[]));
        for last in 1..=5u8 {
            let frame = udp([10, 0, 0, last], [10, 0, 0, 100], 10);
            count(&mut counters, &frame);
        }
        let snap = counters.snapshot(Instant::now(), false);
        assert_eq!(snap.sources.len(), 4);
        assert!(
            !snap
                .sources
                .contains_key(&"10.0.0.1".parse::<IpAddr>().unwrap())
        );
        assert_eq!(snap.global.total.packets, 5);
    }

    #[test]
    fn captures_follow_their_targets() {
        let mut counters = Counters::new(&setup(&[]));
        let from = |last| udp([10, 0, 0, last], [10, 0, 0, 100], 10);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        counters.set_capture_target(Some(one), Some(7));
        assert_eq!(count(&mut counters, &from(1)), [Some(7), None]);
        assert_eq!(count(&mut counters, &from(2)), [None, None]);
        counters.set_capture_target(None, Some(8));
        assert_eq!(count(&mut counters, &from(2)), [None, Some(8)]);
        counters.set_capture_target(Some(one), None);
        counters.set_capture_target(None, None);
        assert_eq!(count(&mut counters, &from(1)), [None, None]);
    }

    #[test]
    fn a_filter_decides_what_counts_as_the_xdp_program_does() {
        let mut setup = setup(&[]);
        setup.filter = Some(
            "udp and dst port 53"
                .parse::<crate::model::filter::Filter>()
                .unwrap()
                .kernel,
        );
        let mut counters = Counters::new(&setup);
        let passing = udp([10, 0, 0, 2], [10, 0, 0, 1], 200);
        let counted_udp = counted(&mut counters, &passing);
        assert!(counted_udp.packet.is_some_and(|p| p.dst_port() == 53));
        // A TCP SYN and a frame that is not IP: refused, not counted at all.
        let syn = tcp([10, 0, 0, 3], [10, 0, 0, 1], SYN);
        assert_eq!(counted(&mut counters, &syn), Counted::default());
        assert_eq!(counted(&mut counters, &[0u8; 10]), Counted::default());
        let snap = counters.snapshot(Instant::now(), false);
        let g = snap.global;
        assert_eq!((g.total.packets, g.udp.packets, g.tcp.packets), (1, 1, 0));
        assert_eq!((g.syn, g.malformed.packets), (0, 0));
        assert_eq!(g.total.bytes, passing.len() as u64);
        assert_eq!(
            snap.sources.len(),
            1,
            "{:?}",
            snap.sources.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn sent_syn_acks_are_counted_per_destination() {
        let mut counters = Counters::new(&setup(&[]));
        let syn_ack = tcp([10, 0, 0, 1], [10, 0, 0, 2], SYN | ACK);
        counters.count_sent(&SnappedFrame {
            data: &syn_ack,
            len: syn_ack.len(),
        });
        let snap = counters.snapshot(Instant::now(), true);
        let sent = snap.syn_acks_sent.unwrap();
        assert_eq!(sent[&"10.0.0.2".parse::<IpAddr>().unwrap()], 1);
        assert_eq!(
            snap.global.total.packets, 0,
            "sent frames are not traffic in"
        );
    }
}
