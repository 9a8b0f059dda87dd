//! XDP entry points. They stay thin: decoding lives in `monitor-common::decode` and
//! counting in `monitor-common::counters`, both unit-tested on the host.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_NOEXIST, xdp_action},
    macros::{map, xdp},
    maps::{LruPerCpuHashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use monitor_common::{
    DEFAULT_MAX_SOURCES, Frame, GlobalCounters, PacketInfo, SourceCache, SourceCounters, SourceKey,
    SourceSlot, decode, decode::MAX_HEADER_OFFSET,
};

#[map(name = "GLOBAL_COUNTERS")]
static GLOBAL_COUNTERS: PerCpuArray<GlobalCounters> = PerCpuArray::with_max_entries(1, 0);

/// Resized at load time (`--max-sources`); LRU so a random-source flood recycles the
/// least recently seen entries instead of failing inserts.
#[map(name = "SOURCE_COUNTERS")]
static SOURCE_COUNTERS: LruPerCpuHashMap<SourceKey, SourceCounters> =
    LruPerCpuHashMap::with_max_entries(DEFAULT_MAX_SOURCES, 0);

/// Per-source counts not yet in SOURCE_COUNTERS (see `SourceCache` for why).
#[map(name = "SOURCE_CACHE")]
static SOURCE_CACHE: PerCpuArray<SourceCache> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn monitor(ctx: XdpContext) -> u32 {
    count(&ctx);
    xdp_action::XDP_PASS
}

/// Baseline for the cost-per-packet benchmark: the cheapest possible XDP program.
#[xdp]
pub fn pass_only(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The frame between `data` and `data_end`; every read is checked against the end,
/// which is how the verifier knows it is in bounds.
struct XdpFrame {
    start: usize,
    end: usize,
}

impl Frame for XdpFrame {
    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        // Keeps the offset's range small and known for the verifier.
        if offset > MAX_HEADER_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + N > self.end {
            return None;
        }
        // SAFETY: `at..at + N` lies inside the frame, checked just above.
        Some(unsafe { core::ptr::read_unaligned(at as *const [u8; N]) })
    }
}

#[inline(always)]
fn count(ctx: &XdpContext) {
    let frame = XdpFrame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let info = decode(&frame);
    let len = frame.len() as u64;
    if let Some(global) = GLOBAL_COUNTERS.get_ptr_mut(0) {
        // SAFETY: this CPU's own slot; XDP runs with preemption off.
        unsafe { (*global).record(&info, len) };
    }
    if info.has_source() {
        count_source(ctx, &info, len);
    }
}

#[inline(always)]
fn count_source(ctx: &XdpContext, info: &PacketInfo, len: u64) {
    let key = SourceKey { addr: info.src };
    let Some(cache) = SOURCE_CACHE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's own cache; XDP runs with preemption off.
    if let Some(evicted) = unsafe { (*cache).record(&key, info, len) } {
        flush(ctx, &evicted);
    }
}

/// Adds a slot's counts to the per-source table.
#[inline(always)]
fn flush(ctx: &XdpContext, slot: &SourceSlot) {
    if let Some(counters) = SOURCE_COUNTERS.get_ptr_mut(&slot.key) {
        // SAFETY: this CPU's slot of the entry.
        unsafe { add(&mut *counters, &slot.counters) };
        return;
    }
    if SOURCE_COUNTERS
        .insert(&slot.key, &slot.counters, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        return;
    }
    // Another CPU created the entry between our lookup and insert: add to it.
    match SOURCE_COUNTERS.get_ptr_mut(&slot.key) {
        // SAFETY: as above.
        Some(counters) => unsafe { add(&mut *counters, &slot.counters) },
        None => warn!(ctx, "per-source table: insert and lookup both failed"),
    }
}

#[inline(always)]
fn add(into: &mut SourceCounters, from: &SourceCounters) {
    into.packets += from.packets;
    into.bytes += from.bytes;
    into.syn += from.syn;
    into.udp += from.udp;
    into.icmp += from.icmp;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
