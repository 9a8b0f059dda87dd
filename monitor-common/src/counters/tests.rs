use std::{collections::HashMap, vec::Vec};

use super::*;
use crate::{
    builder::{L4, Packet},
    decode::{TCP_SYN, decode},
};

fn key(i: u32) -> SourceKey {
    SourceKey {
        addr: Addr::ipv4_mapped(i.to_be_bytes()),
    }
}

const SETTINGS: Settings = Settings {
    scan_epoch: 1,
    blocklist_active: 0,
    blocklist_generation: 0,
    large_flow_bytes: 0,
    captures_armed: 0,
    capture_snaplen: 0,
    mitigation: 0,
    bans: 0,
    packet_view: 0,
    filter: crate::view::PacketFilter {
        host: Addr::UNSPECIFIED,
        terms: 0,
        port: 0,
        class: 0,
        _pad: 0,
    },
    packet_log_rate: 0,
    source_sets: 0,
};

fn syn_to(port: u16) -> PacketInfo {
    decode(
        Packet::ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            L4::Tcp {
                src_port: 40_000,
                dst_port: port,
                flags: TCP_SYN,
            },
        )
        .build()
        .as_slice(),
    )
}

fn syn_info() -> PacketInfo {
    decode(
        Packet::ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            L4::Tcp {
                src_port: 1,
                dst_port: 2,
                flags: TCP_SYN,
            },
        )
        .build()
        .as_slice(),
    )
}

#[test]
fn slots_spread_sequential_addresses() {
    let used: std::collections::HashSet<usize> = (0..SOURCE_CACHE_SLOTS as u32)
        .map(|i| source_slot(&key(i)))
        .collect();
    assert!(
        used.len() > SOURCE_CACHE_SLOTS / 2,
        "{} slots used",
        used.len()
    );
    assert!(used.iter().all(|&s| s < SOURCE_CACHE_SLOTS));
}

#[test]
fn a_repeated_source_stays_in_its_slot() {
    let mut cache = SourceCache::default();
    let info = syn_info();
    for _ in 0..1_000 {
        cache.record(
            &key(7),
            &info,
            60,
            &SETTINGS,
            |_| false,
            |_| panic!("a source in its own slot is never flushed"),
        );
    }
    let slot = cache.slots[source_slot(&key(7))];
    assert_eq!(slot.key, key(7));
    assert_eq!(
        (
            slot.counters.packets,
            slot.counters.bytes,
            slot.counters.syn
        ),
        (1_000, 60_000, 1_000)
    );
}

/// Whatever the order and collisions, counts handed to the table plus counts still in
/// the cache equal what was recorded, per source.
#[test]
fn evicted_plus_pending_counts_are_exact() {
    let mut cache = SourceCache::default();
    let info = syn_info();
    let mut table: HashMap<SourceKey, u64> = HashMap::new();
    let mut sent: HashMap<SourceKey, u64> = HashMap::new();
    // Many more sources than slots, interleaved, with uneven counts.
    let sources: Vec<u32> = (0..5_000u32).map(|i| (i * 7919) % 3_001).collect();
    for (n, &s) in sources.iter().enumerate() {
        for _ in 0..=(n % 3) {
            *sent.entry(key(s)).or_default() += 1;
            cache.record(
                &key(s),
                &info,
                60,
                &SETTINGS,
                |_| false,
                |evicted| {
                    assert!(evicted.is_occupied());
                    *table.entry(evicted.key).or_default() += evicted.counters.packets;
                },
            );
        }
    }
    for slot in cache.slots.iter().filter(|s| s.is_occupied()) {
        *table.entry(slot.key).or_default() += slot.counters.packets;
    }
    assert_eq!(table, sent);
}

#[test]
fn the_port_sketch_estimates_distinct_ports() {
    for distinct in [1u16, 20, 100, 180, 400] {
        let mut c = SourceCounters::default();
        for round in 0..3 {
            for port in 0..distinct {
                c.record(&syn_to(1 + port * 7), 60, 1, false);
            }
            let _ = round;
        }
        let (ports, hosts) = c.scan_estimate();
        let error = (f64::from(ports) - f64::from(distinct)).abs() / f64::from(distinct);
        assert!(error < 0.15, "{distinct} ports estimated as {ports}");
        assert_eq!(hosts, 1);
        assert_eq!(c.syn, 3 * u64::from(distinct));
    }
}

#[test]
fn a_new_epoch_starts_a_new_sketch_and_merging_keeps_the_newest() {
    let mut old = SourceCounters::default();
    for port in 1..=50 {
        old.record(&syn_to(port), 60, 1, false);
    }
    let mut new = old;
    new.record(&syn_to(9_999), 60, 2, false);
    assert_eq!(new.scan_estimate().0, 1, "epoch 2 forgot epoch 1's ports");
    assert_eq!(old.merged(new).scan_estimate().0, 1);
    assert_eq!(new.merged(old).scan_estimate().0, 1);
    assert_eq!(old.merged(new).packets, 101);
    let mut same = SourceCounters::default();
    same.record(&syn_to(9_999), 60, 1, false);
    let mut union = old;
    union.record(&syn_to(9_999), 60, 1, false);
    let joined = old.merged(same);
    assert_eq!(
        (joined.scan_ports, joined.scan_hosts),
        (union.scan_ports, union.scan_hosts),
        "same epoch: joined"
    );
}

#[test]
fn replies_from_service_ports_are_not_probes() {
    let dns_reply = decode(
        Packet::ipv4(
            [10, 0, 0, 53],
            [10, 0, 0, 2],
            L4::Udp {
                src_port: 53,
                dst_port: 40_123,
            },
        )
        .build()
        .as_slice(),
    );
    let mut c = SourceCounters::default();
    c.record(&dns_reply, 80, 1, false);
    assert_eq!(c.scan_ports, [0; 4]);
    assert_eq!(c.udp, 1);
}

#[test]
fn the_blocklist_verdict_is_cached_per_generation() {
    let mut cache = SourceCache::default();
    let info = syn_info();
    let mut lookups = 0;
    let settings = Settings {
        blocklist_active: 1,
        ..SETTINGS
    };
    for _ in 0..10 {
        cache.record(
            &key(7),
            &info,
            60,
            &settings,
            |_| {
                lookups += 1;
                true
            },
            |_| {},
        );
    }
    assert_eq!(lookups, 1);
    let slot = cache.slots[source_slot(&key(7))];
    assert_eq!(slot.counters.blocklisted, 10);
    let changed = Settings {
        blocklist_generation: 1,
        ..settings
    };
    cache.record(&key(7), &info, 60, &changed, |_| false, |_| {});
    let slot = cache.slots[source_slot(&key(7))];
    assert_eq!((slot.counters.blocklisted, slot.counters.packets), (10, 11));
}

#[test]
fn linear_counting_edges() {
    assert_eq!(estimate_distinct(0, 256), 0);
    assert_eq!(estimate_distinct(1, 256), 1);
    assert_eq!(estimate_distinct(256, 256), 1420); // 256 ln 256
}

/// The cache skips the sketch for a repeated probe: its counts must still be exactly
/// what `SourceCounters::record` makes of the same packets, across epochs and slot
/// takeovers too.
#[test]
#[expect(
    clippy::maybe_infinite_iter,
    reason = "some key soon shares a slot: there are 256 slots"
)]
fn the_cache_counts_what_source_counters_count() {
    let ack = decode(
        Packet::ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            L4::Tcp {
                src_port: 40_000,
                dst_port: 80,
                flags: crate::decode::TCP_ACK,
            },
        )
        .build()
        .as_slice(),
    );
    let ping = |dst: u8| {
        decode(
            Packet::ipv4([10, 0, 0, 1], [10, 0, 0, dst], L4::Echo)
                .build()
                .as_slice(),
        )
    };
    // Two sources sharing a slot.
    let a = key(1);
    let b = (2..)
        .map(key)
        .find(|k| source_slot(k) == source_slot(&a))
        .unwrap();
    let packets = [
        // Epoch 0 (before userspace sets one): a zeroed sketch is not stale.
        (b, ping(3), 0),
        (a, ping(3), 0),
        (a, syn_to(80), 1),
        (a, syn_to(80), 1),
        (a, ack, 1),
        (a, syn_to(443), 1),
        (a, syn_to(80), 1),
        (a, ping(2), 1),
        (a, ping(2), 1),
        (a, ping(3), 1),
        // The same probe in a new epoch, after a packet that is none.
        (a, ack, 2),
        (a, ping(3), 2),
        // And directly.
        (a, ping(3), 3),
        // The same probe from the source that takes the slot over.
        (b, ping(3), 3),
        (b, ping(3), 3),
    ];
    let mut cache = SourceCache::default();
    let mut plain = SourceCounters::default();
    let mut owner = b;
    for (n, (source, info, epoch)) in packets.iter().enumerate() {
        let settings = Settings {
            scan_epoch: *epoch,
            ..SETTINGS
        };
        cache.record(source, info, 60, &settings, |_| false, |_| {});
        if *source != owner {
            owner = *source;
            plain = SourceCounters::default();
        }
        plain.record(info, 60, *epoch, false);
        let slot = cache.slots[source_slot(source)];
        assert_eq!(slot.counters, plain, "after packet {n}");
    }
}

#[test]
fn the_source_cache_fits_one_per_cpu_value() {
    assert_eq!(size_of::<SourceSlot>(), 128);
    assert!(size_of::<SourceCache>() <= 32 * 1024);
}
