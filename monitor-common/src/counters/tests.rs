use std::{collections::HashMap, vec::Vec};

use super::*;
use crate::decode::Addr;
use crate::{
    builder::{L4, Packet},
    decode::{TCP_SYN, decode},
};

fn key(i: u32) -> SourceKey {
    SourceKey {
        addr: Addr::ipv4_mapped(i.to_be_bytes()),
    }
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
        assert_eq!(cache.record(&key(7), &info, 60), None);
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
        for _ in 0..(n % 3 + 1) {
            *sent.entry(key(s)).or_default() += 1;
            if let Some(evicted) = cache.record(&key(s), &info, 60) {
                assert!(evicted.is_occupied());
                *table.entry(evicted.key).or_default() += evicted.counters.packets;
            }
        }
    }
    for slot in cache.slots.iter().filter(|s| s.is_occupied()) {
        *table.entry(slot.key).or_default() += slot.counters.packets;
    }
    assert_eq!(table, sent);
}
