//! What the program counted, read from its maps: the host-wide counters, the
//! per-source counts (the table plus what each CPU's cache still holds), the SYN-ACKs
//! sent, the per-address tallies of drops and blocklisted destinations, and the packet
//! log's own counts.

use std::{collections::HashMap, net::IpAddr};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Map, MapData, PerCpuArray},
};
use monitor_common::{
    GlobalCounters, SourceCache, SourceCounters, SourceKey, counters::Tally, names,
    view::PacketLogState,
};

use super::table::MappedTable;
use crate::{backend::batch, model::source_list::SourceList};

/// Host-wide counters, summed over CPUs.
pub fn read_global(ebpf: &Ebpf) -> Result<GlobalCounters> {
    let map = ebpf
        .map(names::GLOBAL_COUNTERS)
        .context("map GLOBAL_COUNTERS missing")?;
    let counters = PerCpuArray::<_, GlobalCounters>::try_from(map)?;
    let per_cpu = counters
        .get(&0, 0)
        .context("failed to read GLOBAL_COUNTERS")?;
    Ok(per_cpu
        .iter()
        .fold(GlobalCounters::default(), |sum, c| sum.merged(*c)))
}

/// Per-source counters: the per-source table plus the counts still pending in each
/// CPU's source cache. The table is read first: a slot flushed in between is then
/// missed once (and counted at the next poll), never counted twice.
pub fn read_sources(ebpf: &Ebpf) -> Result<SourceList<SourceCounters>> {
    let mut sources = SourceList::default();
    read_sources_into(
        ebpf,
        &MappedTable::map(ebpf, names::SOURCE_TABLE)?,
        &mut sources,
    )?;
    Ok(sources)
}

/// [`read_sources`] into `sources`, emptied first; its memory is reused.
pub(super) fn read_sources_into(
    ebpf: &Ebpf,
    table: &MappedTable<SourceCounters>,
    sources: &mut SourceList<SourceCounters>,
) -> Result<()> {
    let merge = |sum: &mut SourceCounters, more| *sum = sum.merged(more);
    // The caches before and after the table. A slot that changed hands in between
    // was flushed into the table, perhaps after the read passed its source's set:
    // read once, its counts would be in neither, and the source's total would fall
    // for one poll. Those sources' sets are read again once the flush has landed.
    let before = read_source_caches(ebpf)?;
    table.read_into(sources, merge);
    let after = read_source_caches(ebpf)?;
    let mut reread = Vec::new();
    for (was, is) in before
        .iter()
        .flat_map(|c| c.slots.iter())
        .zip(after.iter().flat_map(|c| c.slots.iter()))
    {
        let kept = is.is_occupied() && is.key.same(&was.key) && is.takeovers == was.takeovers;
        if was.is_occupied() && !kept {
            if let Some(fresh) = table.read_one(&was.key, merge) {
                if !sources.replace(was.key, fresh) {
                    reread.push((was.key, fresh));
                }
            }
        }
    }
    sources.add_unordered(reread, merge);
    let pending = after
        .iter()
        .flat_map(|c| c.slots.iter())
        .filter(|slot| slot.is_occupied())
        .map(|slot| (slot.key, slot.counters))
        .collect();
    sources.add_unordered(pending, merge);
    Ok(())
}

/// Each CPU's source cache.
fn read_source_caches(ebpf: &Ebpf) -> Result<Vec<SourceCache>> {
    let map = ebpf
        .map(names::SOURCE_CACHE)
        .context("map SOURCE_CACHE missing")?;
    let cache = PerCpuArray::<_, SourceCache>::try_from(map)?;
    let per_cpu = cache.get(&0, 0).context("failed to read SOURCE_CACHE")?;
    Ok(per_cpu.iter().copied().collect())
}

/// SYN-ACKs sent per destination.
pub fn read_syn_acks_sent(ebpf: &Ebpf) -> Result<SourceList<u64>> {
    Ok(syn_acks_sent(&MappedTable::map(
        ebpf,
        names::SYN_ACKS_SENT,
    )?))
}

/// SYN-ACKs sent per destination, from the table already mapped.
pub(super) fn syn_acks_sent(table: &MappedTable<u64>) -> SourceList<u64> {
    let mut sent = SourceList::default();
    table.read_into(&mut sent, |sum, more| *sum += more);
    sent
}

/// Frames mitigation dropped (or would have) per source, summed over CPUs.
pub fn read_dropped(ebpf: &Ebpf) -> Result<HashMap<IpAddr, Tally>> {
    read_tallies(ebpf, names::DROPPED_SOURCES)
}

/// Traffic to blocklisted destinations, summed over CPUs.
pub fn read_listed_destinations(ebpf: &Ebpf) -> Result<HashMap<IpAddr, Tally>> {
    read_tallies(ebpf, names::BLOCKLISTED_DESTINATIONS)
}

/// A per-CPU hash map of tallies by address, summed over CPUs, read in batches (see
/// `batch`).
fn read_tallies(ebpf: &Ebpf, name: &str) -> Result<HashMap<IpAddr, Tally>> {
    let mut tallies = HashMap::new();
    batch::for_each_per_cpu_entry(
        per_cpu_map_data(ebpf, name)?,
        |key: SourceKey, per_cpu: &[Tally]| {
            let sum = per_cpu
                .iter()
                .copied()
                .fold(Tally::default(), Tally::merged);
            tallies.insert(key.ip(), sum);
        },
    )
    .with_context(|| format!("failed to read {name}"))?;
    Ok(tallies)
}

fn per_cpu_map_data<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a MapData> {
    match ebpf.map(name) {
        Some(Map::PerCpuHashMap(data) | Map::PerCpuLruHashMap(data)) => Ok(data),
        Some(_) => bail!("map {name} is not a per-CPU hash map"),
        None => bail!("map {name} missing"),
    }
}

/// The packet log's per-CPU state, summed.
pub(super) fn read_packet_log_state(ebpf: &Ebpf) -> Result<PacketLogState> {
    let map = ebpf
        .map(names::PACKET_LOG_STATE)
        .context("map PACKET_LOG_STATE missing")?;
    let state = PerCpuArray::<_, PacketLogState>::try_from(map)?;
    let per_cpu = state
        .get(&0, 0)
        .context("failed to read PACKET_LOG_STATE")?;
    Ok(per_cpu
        .iter()
        .fold(PacketLogState::default(), |sum, s| PacketLogState {
            rate_skipped: sum.rate_skipped + s.rate_skipped,
            ring_full: sum.ring_full + s.ring_full,
            ..sum
        }))
}
