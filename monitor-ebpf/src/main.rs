//! XDP entry points. They stay thin: decoding lives in `monitor-common::decode` and
//! counting in `monitor-common::counters`, both unit-tested on the host.
#![no_std]
#![no_main]
#![expect(
    clippy::inline_always,
    reason = "helpers are inlined into the program: the verifier checks one function"
)]

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, TC_ACT_UNSPEC, xdp_action},
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map, xdp},
    maps::{
        Array, HashMap, LpmTrie, LruHashMap, LruPerCpuHashMap, PerCpuArray, PerfEventArray,
        RingBuf, lpm_trie::Key,
    },
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::warn;
use monitor_common::{
    Class, DEFAULT_MAX_SOURCES, Frame, GlobalCounters, PacketInfo, SourceCache, SourceKey,
    SourceSlot,
    counters::{
        BLOCKLIST_EXEMPT, BanEntry, CaptureMeta, DestinationCounters, FlowCounters, FlowKey,
        LargeFlowEvent, MAX_CAPTURE_SNAPLEN, MIN_FLOW_PAYLOAD, MITIGATION_DROP, MITIGATION_OFF,
        Settings, Tally,
    },
    decode,
    decode::{Addr, MAX_HEADER_OFFSET, decode_ip},
    limits::{
        DEFAULT_MAX_BANS, MAX_CAPTURE_TARGETS, MAX_FLOWS, MAX_LISTED_DESTINATIONS,
        MIN_BLOCKLIST_ENTRIES, MIN_DROPPED_SOURCES,
    },
    source_table::{SourceEntry, SynAckEntry, flush_into},
    view::{PacketLogEvent, PacketLogState, VIEW_FILTER, VIEW_LOG},
};

#[map(name = "GLOBAL_COUNTERS")]
static GLOBAL_COUNTERS: PerCpuArray<GlobalCounters> = PerCpuArray::with_max_entries(1, 0);

/// The per-source table (see `monitor_common::source_table`), resized at load time
/// (`--max-sources`). Mappable: userspace reads it in place, without a syscall.
#[map(name = "SOURCE_TABLE")]
static SOURCE_TABLE: Array<SourceEntry> =
    Array::with_max_entries(DEFAULT_MAX_SOURCES, BPF_F_MMAPABLE);

/// Per-source counts not yet in `SOURCE_TABLE` (see `SourceCache` for why).
#[map(name = "SOURCE_CACHE")]
static SOURCE_CACHE: PerCpuArray<SourceCache> = PerCpuArray::with_max_entries(1, 0);

/// Written by userspace: the scan epoch, blocklist state, large-flow threshold.
#[map(name = "SETTINGS")]
static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Blocklisted prefixes (IPv4 as IPv4-mapped, prefix + 96); the value is the entry's
/// index in userspace's list.
#[map(name = "BLOCKLIST")]
static BLOCKLIST: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MIN_BLOCKLIST_ENTRIES, 0);

/// Traffic to blocklisted destinations, per destination.
#[map(name = "BLOCKLISTED_DESTINATIONS")]
static BLOCKLISTED_DESTINATIONS: LruPerCpuHashMap<SourceKey, DestinationCounters> =
    LruPerCpuHashMap::with_max_entries(MAX_LISTED_DESTINATIONS, 0);

/// Inbound payload per flow, for packets of at least `MIN_FLOW_PAYLOAD` bytes. Not
/// per-CPU: RSS keeps a flow on one CPU, so its updates do not race in practice.
#[map(name = "FLOWS")]
static FLOWS: LruHashMap<FlowKey, FlowCounters> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// A `LargeFlowEvent` the moment a flow's payload reaches the threshold.
#[map(name = "LARGE_FLOWS")]
static LARGE_FLOWS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Sources being captured, each with its capture id; the unspecified address (::)
/// stands for every source (a distributed flood).
#[map(name = "CAPTURE_TARGETS")]
static CAPTURE_TARGETS: HashMap<SourceKey, u32> = HashMap::with_max_entries(MAX_CAPTURE_TARGETS, 0);

/// Captured packets: a `CaptureMeta`, then the packet's first bytes (appended by the
/// kernel, so the program copies nothing itself).
#[map(name = "CAPTURED")]
static CAPTURED: PerfEventArray<CaptureMeta> = PerfEventArray::new(0);

/// The packet log (`--packets`): one `PacketLogEvent` per logged packet.
#[map(name = "PACKET_LOG")]
static PACKET_LOG: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// The packet log's rate cap and what it skipped, per CPU.
#[map(name = "PACKET_LOG_STATE")]
static PACKET_LOG_STATE: PerCpuArray<PacketLogState> = PerCpuArray::with_max_entries(1, 0);

/// Banned sources, written by userspace's mitigation policy (`monitor bans unban`
/// reaches it through the monitor's control socket). Resized at load time to the ban
/// cap.
#[map(name = "BANS")]
static BANS: HashMap<SourceKey, BanEntry> = HashMap::with_max_entries(DEFAULT_MAX_BANS, 0);

/// Frames dropped by mitigation per source (in dry-run: those that would have been).
/// Per CPU: a banned flood is dropped on every CPU at once. Resized at load time
/// (`MIN_DROPPED_SOURCES` or the ban cap): LRU, so a blocklisted random-source flood
/// keeps the latest.
#[map(name = "DROPPED_SOURCES")]
static DROPPED_SOURCES: LruPerCpuHashMap<SourceKey, Tally> =
    LruPerCpuHashMap::with_max_entries(MIN_DROPPED_SOURCES, 0);

#[xdp]
fn monitor(ctx: XdpContext) -> u32 {
    count(&ctx)
}

/// SYN-ACKs this host sends, per destination: what the SYN:SYN-ACK ratio compares a
/// source's SYNs with. Counted on egress, which XDP does not see. A table like
/// `SOURCE_TABLE`, of the same size: under a SYN flood on an open port the host answers
/// every spoofed source, and a hash map of them took as long to read as the sources.
#[map(name = "SYN_ACKS_SENT")]
static SYN_ACKS_SENT: Array<SynAckEntry> =
    Array::with_max_entries(DEFAULT_MAX_SOURCES, BPF_F_MMAPABLE);

/// TC egress: counts the SYN-ACKs the host sends; every packet continues unchanged.
#[classifier]
fn egress(ctx: TcContext) -> i32 {
    let frame = PacketFrame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let info = decode(&frame);
    if info.is_syn_ack()
        && let Some(settings) = SETTINGS.get(0)
    {
        let key = SourceKey { addr: info.dst };
        // SAFETY: a helper without preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        // SAFETY: as in `flush`. A SYN-ACK whose entry stays held is not counted: the
        // ratio check then errs towards calling a source a flood, which it is then.
        unsafe {
            flush_into(&key, 1u64, settings.source_sets, now, |i| {
                SYN_ACKS_SENT.get_ptr_mut(i)
            })
        };
    }
    // TCX_NEXT: let the next program (or the stack) decide.
    TC_ACT_UNSPEC
}

/// Baseline for the cost-per-packet benchmark: the cheapest possible XDP program.
#[xdp]
fn pass_only(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The frame between `data` and `data_end`; every read is checked against the end,
/// which is how the verifier knows it is in bounds.
struct PacketFrame {
    start: usize,
    end: usize,
}

impl Frame for PacketFrame {
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
        // One bounds check for the whole header, then a load per word: LLVM lowers an
        // unaligned array read to a load per byte, and header fields sit at any
        // alignment.
        let mut bytes = [0u8; N];
        let mut i = 0;
        // SAFETY (each load): `at + i..` plus the load's width stays within `at..at + N`,
        // checked above to lie inside the frame.
        while i + 8 <= N {
            bytes[i..i + 8].copy_from_slice(&unsafe { load::<8>(at + i) });
            i += 8;
        }
        if i + 4 <= N {
            bytes[i..i + 4].copy_from_slice(&unsafe { load::<4>(at + i) });
            i += 4;
        }
        if i + 2 <= N {
            bytes[i..i + 2].copy_from_slice(&unsafe { load::<2>(at + i) });
            i += 2;
        }
        if i < N {
            bytes[i] = unsafe { load::<1>(at + i) }[0];
        }
        Some(bytes)
    }
}

/// The `W` bytes at `at`, in one load.
///
/// A pointer read (not `read_unaligned`) is what makes LLVM emit a single load; the
/// address may be misaligned, which the verifier accepts for packet loads where the
/// CPU does them well (x86-64, arm64), refusing to load the program elsewhere.
///
/// # Safety
///
/// `at..at + W` lies inside the frame, checked against its end.
#[inline(always)]
unsafe fn load<const W: usize>(at: usize) -> [u8; W] {
    // SAFETY: the caller's.
    unsafe {
        match W {
            8 => core::mem::transmute_copy(&(at as *const u64).read()),
            4 => core::mem::transmute_copy(&(at as *const u32).read()),
            2 => core::mem::transmute_copy(&(at as *const u16).read()),
            _ => core::ptr::read(at as *const [u8; W]),
        }
    }
}

/// Counts the packet; the verdict is `XDP_PASS` unless mitigation drops its source.
#[inline(always)]
fn count(ctx: &XdpContext) -> u32 {
    let frame = PacketFrame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let len = frame.len() as u64;
    let Some(global) = GLOBAL_COUNTERS.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // One `let else` per lookup, never a tuple of Options: see `monitor_common::decode`.
    // Read before counting: a filter decides whether the packet counts at all.
    let Some(settings) = SETTINGS.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let info = match decode_ip(&frame) {
        Ok(info) => info,
        Err(class) => {
            // A filter passes IP packets only.
            if settings.packet_view & VIEW_FILTER == 0 {
                // SAFETY: this CPU's own slot; XDP runs with preemption off.
                unsafe { (*global).record(&PacketInfo::without_ip(class), len) };
            }
            return xdp_action::XDP_PASS;
        }
    };
    // Off (the usual case), the filter and the packet log cost this one branch.
    if settings.packet_view != 0 && !packet_view(&info, len, settings) {
        // The filter decides what is counted, never what is dropped. This packet is
        // not counted, so it stays out of the source cache: its verdict is looked up.
        if settings.mitigation != MITIGATION_OFF {
            // SAFETY: this CPU's own slot; XDP runs with preemption off.
            return mitigate_uncounted(&info, len, unsafe { &mut *global }, settings);
        }
        return xdp_action::XDP_PASS;
    }
    // SAFETY: as above.
    unsafe { (*global).record(&info, len) };
    if settings.captures_armed != 0 {
        capture(ctx, &info, len, settings.capture_snaplen);
    }
    let Some(cache) = SOURCE_CACHE.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    let key = SourceKey { addr: info.src };
    // SAFETY: this CPU's own cache; XDP runs with preemption off.
    let cache = unsafe { &mut *cache };
    let listed = cache.record(
        &key,
        &info,
        len,
        settings,
        |k| is_listed(&k.addr),
        |evicted| flush(ctx, evicted, settings.source_sets),
    );
    // Off, this is the only cost of mitigation. The source was counted above either
    // way: detection keeps seeing a banned flood, so its ban can be confirmed again.
    if settings.mitigation != MITIGATION_OFF
        && (listed || (settings.bans != 0 && BANS.get_ptr(&key).is_some()))
    {
        // SAFETY: this CPU's own slot, as above.
        return mitigate(&key, len, unsafe { &mut *global }, settings.mitigation);
    }
    if settings.blocklist_active != 0 && is_listed(&info.dst) {
        count_listed_destination(&info, len);
    }
    if settings.large_flow_bytes != 0
        && matches!(info.class(), Class::Tcp | Class::Udp)
        && info.payload_len() >= MIN_FLOW_PAYLOAD
    {
        follow_flow(&info, settings.large_flow_bytes);
    }
    xdp_action::XDP_PASS
}

/// Mitigation for an IP packet the filter refused: dropped (and counted as dropped)
/// when its source is blocklisted or banned, as a counted packet would be; passed
/// otherwise. The blocklist is asked directly, as the source cache would ask it.
#[inline(always)]
fn mitigate_uncounted(
    info: &PacketInfo,
    len: u64,
    global: &mut GlobalCounters,
    settings: &Settings,
) -> u32 {
    let key = SourceKey { addr: info.src };
    if (settings.blocklist_active != 0 && is_listed(&key.addr))
        || (settings.bans != 0 && BANS.get_ptr(&key).is_some())
    {
        return mitigate(&key, len, global, settings.mitigation);
    }
    xdp_action::XDP_PASS
}

/// Counts a frame from a blocklisted or banned source as dropped and drops it, or
/// passes it in dry-run.
#[inline(always)]
fn mitigate(key: &SourceKey, len: u64, global: &mut GlobalCounters, mode: u64) -> u32 {
    global.dropped.add(len);
    match DROPPED_SOURCES.get_ptr_mut(key) {
        // SAFETY: this CPU's slot of the entry.
        Some(dropped) => unsafe { (*dropped).add(len) },
        None => {
            let mut first = Tally::default();
            first.add(len);
            // Per-CPU: an insert racing another CPU's writes only this CPU's copy.
            let _ = DROPPED_SOURCES.insert(key, &first, 0);
        }
    }
    if mode == MITIGATION_DROP {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// The filter's verdict (false: the packet is not counted), and the packet log.
#[inline(always)]
fn packet_view(info: &PacketInfo, len: u64, settings: &Settings) -> bool {
    if settings.packet_view & VIEW_FILTER != 0 && !settings.filter.matches(info) {
        return false;
    }
    if settings.packet_view & VIEW_LOG != 0 {
        log_packet(info, len, settings.packet_log_rate);
    }
    true
}

/// Sends the packet to the packet-log ring, within the per-CPU rate cap.
#[inline(always)]
fn log_packet(info: &PacketInfo, len: u64, rate: u64) {
    let Some(state) = PACKET_LOG_STATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's own slot; XDP runs with preemption off.
    let state = unsafe { &mut *state };
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if !state.admit(now, rate) {
        return;
    }
    if PACKET_LOG
        .output::<PacketLogEvent>(&PacketLogEvent::of(info, len, now), 0)
        .is_err()
    {
        state.ring_full += 1;
    }
}

/// Copies the packet to userspace when its source (or every source) is being captured.
#[inline(always)]
fn capture(ctx: &XdpContext, info: &PacketInfo, len: u64, snaplen: u64) {
    // A packet can belong to two captures: its source's, and an every-source one (a
    // distributed flood's), which must miss nothing. Two separate lookups and sends:
    // folding them into one loop makes LLVM merge the pointers, which the verifier
    // refuses.
    // SAFETY (both reads): a map value, valid for this program run; the u32 is copied.
    if let Some(id) = CAPTURE_TARGETS.get_ptr(&SourceKey { addr: info.src }) {
        send_captured(ctx, unsafe { *id }, len, snaplen);
    }
    if let Some(id) = CAPTURE_TARGETS.get_ptr(&SourceKey {
        addr: Addr::UNSPECIFIED,
    }) {
        send_captured(ctx, unsafe { *id }, len, snaplen);
    }
}

#[inline(always)]
fn send_captured(ctx: &XdpContext, capture_id: u32, len: u64, snaplen: u64) {
    let caplen = len.min(snaplen).min(u64::from(MAX_CAPTURE_SNAPLEN)) as u32;
    let meta = CaptureMeta {
        capture_id,
        len: len as u32,
        caplen,
        _pad: 0,
        // SAFETY: a helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
    };
    // The upper flag bits tell the kernel how many packet bytes to append.
    CAPTURED.output(ctx, &meta, caplen);
}

#[inline(always)]
fn is_listed(addr: &Addr) -> bool {
    BLOCKLIST
        .get(Key::new(128, addr.bytes()))
        .is_some_and(|index| *index != BLOCKLIST_EXEMPT)
}

#[inline(always)]
fn count_listed_destination(info: &PacketInfo, len: u64) {
    let key = SourceKey { addr: info.dst };
    match BLOCKLISTED_DESTINATIONS.get_ptr_mut(&key) {
        // SAFETY: this CPU's slot of the entry.
        Some(counters) => unsafe { (*counters).add(len) },
        None => {
            let mut first = DestinationCounters::default();
            first.add(len);
            // A lost race with another CPU loses this one packet's count: acceptable
            // for an alert that needs only to know the traffic exists.
            let _ = BLOCKLISTED_DESTINATIONS.insert(&key, &first, 0);
        }
    }
}

#[inline(always)]
fn follow_flow(info: &PacketInfo, threshold: u64) {
    let key = FlowKey::of(info);
    let payload = u64::from(info.payload_len());
    let Some(flow) = FLOWS.get_ptr_mut(&key) else {
        let first = FlowCounters {
            payload_bytes: payload,
            packets: 1,
            // SAFETY: a helper without preconditions.
            first_seen_ns: unsafe { bpf_ktime_get_ns() },
            reported: 0,
        };
        let _ = FLOWS.insert(&key, &first, 0);
        return;
    };
    // SAFETY: the entry stays valid for this program run.
    let flow = unsafe { &mut *flow };
    flow.payload_bytes += payload;
    flow.packets += 1;
    if flow.reported == 0 && flow.payload_bytes >= threshold {
        flow.reported = 1;
        let event = LargeFlowEvent {
            key,
            counters: *flow,
            // SAFETY: as above.
            now_ns: unsafe { bpf_ktime_get_ns() },
        };
        // A full ring drops the event; userspace also polls the flows it knows.
        let _ = LARGE_FLOWS.output::<LargeFlowEvent>(&event, 0);
    }
}

/// Adds a slot's counts to the per-source table.
#[inline(always)]
fn flush(ctx: &XdpContext, slot: &SourceSlot, sets: u64) {
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: array values stay valid for the program run, and every writer of the
    // table goes through `flush_into`.
    let landed = unsafe {
        flush_into(&slot.key, slot.counters, sets, now, |i| {
            SOURCE_TABLE.get_ptr_mut(i)
        })
    };
    if !landed {
        warn!(
            ctx,
            "per-source table: entry held by other CPUs throughout, {} packets' counts lost",
            slot.counters.packets
        );
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
