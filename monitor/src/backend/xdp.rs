//! The XDP backend: loads the compiled program, attaches it through a BPF link (so a
//! killed monitor leaves nothing attached) and reads its per-CPU maps.

use std::{
    collections::HashMap,
    io,
    mem::size_of,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{
        Array, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, PerfEventArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
        perf::PerfEvent,
    },
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use log::{debug, warn};
use monitor_common::{
    GlobalCounters, SourceCache, SourceCounters, SourceKey,
    counters::{
        BLOCKLIST_EXEMPT, BanEntry, CaptureMeta, FlowCounters, FlowKey, LargeFlowEvent, Settings,
        Tally,
    },
    limits::{DEFAULT_MAX_BANS, MIN_BLOCKLIST_ENTRIES, MIN_DROPPED_SOURCES},
    names,
    source_table::{
        Counts, SOURCE_TABLE_WAYS, TableEntry, read_entry, source_set_start, source_table_sets,
    },
    view::{PacketFilter, PacketLogEvent, PacketLogState, VIEW_FILTER, VIEW_LOG, class_from_u8},
};

use super::{
    Backend, CAPTURE_QUEUE, FlowTotals, PACKET_LOG_QUEUE, QUIET_FLOW, Snapshot, SourceList,
};
use crate::{
    capture::{CaptureTarget, CapturedPacket},
    cli::XdpModeArg,
    detect::lists::Cidr,
    iface,
    packets::PacketRecord,
};

/// The compiled XDP object, built by `build.rs`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor-xdp"));

const PRIVILEGE_HINT: &str = "run as root (sudo), or grant the binary the capabilities: \
    sudo setcap cap_bpf,cap_net_admin,cap_perfmon+ep <path to monitor>";

/// Fails with one line naming the missing capabilities, before anything is loaded.
pub fn check_privileges() -> Result<()> {
    use caps::{CapSet, Capability};
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    let mut missing = Vec::new();
    if !has(Capability::CAP_BPF) && !has(Capability::CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(Capability::CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    // Without it the verifier treats the program as unprivileged and refuses its
    // packet-pointer arithmetic ("pointer -= pointer prohibited").
    if !has(Capability::CAP_PERFMON) && !has(Capability::CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !missing.is_empty() {
        bail!(
            "missing capability {}: {PRIVILEGE_HINT}",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Loads the object into the kernel (maps created, programs not yet loaded).
pub fn load_object(max_sources: u32) -> Result<Ebpf> {
    load_object_sized(max_sources, MIN_BLOCKLIST_ENTRIES, DEFAULT_MAX_BANS)
}

fn load_object_sized(max_sources: u32, blocklist_capacity: u32, max_bans: u32) -> Result<Ebpf> {
    EbpfLoader::new()
        .map_max_entries(names::SOURCE_TABLE, max_sources)
        // The same shape as SOURCE_TABLE: the program uses its set count for both.
        .map_max_entries(names::SYN_ACKS_SENT, max_sources)
        // Banned sources and blocklisted ones seen dropping, not every source: it is read
        // whole each poll, and a hash map of 65,536 took 30-70 ms to read.
        .map_max_entries(names::DROPPED_SOURCES, MIN_DROPPED_SOURCES.max(max_bans))
        .map_max_entries(names::BANS, max_bans.max(1))
        .map_max_entries("BLOCKLIST", blocklist_capacity.max(MIN_BLOCKLIST_ENTRIES))
        .load(EBPF_OBJECT)
        .map_err(|err| match &err {
            EbpfError::MapError(MapError::CreateError { io_error, .. })
                if io_error.kind() == io::ErrorKind::PermissionDenied =>
            {
                anyhow!("the kernel refused to create BPF maps ({io_error}): {PRIVILEGE_HINT}")
            }
            _ => anyhow!(err).context("failed to load the XDP object"),
        })
        .and_then(|mut ebpf| {
            // The program needs the per-source table's shape before its first packet.
            write_settings(&mut ebpf, &Settings::default())?;
            Ok(ebpf)
        })
}

/// Loads (verifies) one XDP program of the object and returns it.
pub fn load_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("program `{name}` missing from the XDP object"))?
        .try_into()
        .with_context(|| format!("program `{name}` is not an XDP program"))?;
    program.load().map_err(|err| match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            debug!("verifier log:\n{verifier_log}");
            // The reason is the last line before the verifier's closing statistics.
            let log = verifier_log.to_string();
            let statistics = [
                "processed ",
                "verification time",
                "stack depth",
                "max_states",
            ];
            let reason = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && !statistics.iter().any(|s| l.starts_with(s)))
                .unwrap_or("");
            anyhow!("the kernel rejected the XDP program `{name}` ({io_error}): {reason}")
        }
        other => anyhow!(other).context(format!("failed to load the XDP program `{name}`")),
    })?;
    Ok(program)
}

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
pub fn read_sources_into(
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

/// A table of `source_table`'s kind (the per-source table, the SYN-ACKs sent) mapped
/// into this process, read-only: a poll reads it in place instead of copying it out
/// entry by entry through syscalls. aya 0.14 does not map arrays, hence the `mmap` by
/// hand.
pub struct MappedTable<C> {
    start: NonNull<TableEntry<C>>,
    entries: usize,
    mapped_len: usize,
}

// SAFETY: the mapping is shared memory, read only through `read_entry`'s protocol;
// nothing in it is tied to a thread.
unsafe impl<C> Send for MappedTable<C> {}

impl<C: Counts> MappedTable<C> {
    pub fn map(ebpf: &Ebpf, name: &str) -> Result<Self> {
        let data = match ebpf.map(name) {
            Some(Map::Array(data)) => data,
            Some(_) => bail!("map {name} is not an array"),
            None => bail!("map {name} missing"),
        };
        let entries = data
            .info()
            .with_context(|| format!("failed to query map {name}"))?
            .max_entries() as usize;
        // SAFETY: a query without preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mapped_len = (entries * size_of::<TableEntry<C>>()).div_ceil(page) * page;
        // SAFETY: a new shared read-only mapping of the map's fd, which the kernel
        // sizes to the array rounded up to pages; unmapped on drop.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("failed to map {name} into memory"));
        }
        Ok(Self {
            start: NonNull::new(start.cast()).context("mmap returned null")?,
            entries,
            mapped_len,
        })
    }

    /// Every used entry's address and counts into `list`, emptied first, in its
    /// order (the table's), the counts of an address with more than one entry added.
    pub fn read_into(&self, list: &mut SourceList<C>, merge: impl Fn(&mut C, C)) {
        list.clear(source_table_sets(self.entries as u32));
        list.reserve(self.entries);
        self.for_each(|key, counts| list.push(key, counts));
        list.finish_nearly_ordered(merge);
    }

    /// `key`'s counts now (its entries added up), `None` when it has none.
    pub fn read_one(&self, key: &SourceKey, merge: impl Fn(&mut C, C)) -> Option<C> {
        let sets = source_table_sets(self.entries as u32);
        let start = source_set_start(key, sets) as usize;
        let mut sum: Option<C> = None;
        for i in start..(start + SOURCE_TABLE_WAYS as usize).min(self.entries) {
            // SAFETY: within the mapping; the kernel's writers follow `flush_into`.
            if let Some((k, counts)) = unsafe { read_entry(self.start.as_ptr().add(i)) }
                && k.same(key)
            {
                match &mut sum {
                    Some(sum) => merge(sum, counts),
                    None => sum = Some(counts),
                }
            }
        }
        sum
    }

    /// Calls `each` with every used entry's address and counts (an address may have
    /// more than one entry: callers add them up).
    pub fn for_each(&self, mut each: impl FnMut(SourceKey, C)) {
        for i in 0..self.entries {
            // SAFETY: within the mapping; the kernel's writers follow `flush_into`.
            if let Some((key, counts)) = unsafe { read_entry(self.start.as_ptr().add(i)) } {
                each(key, counts);
            }
        }
    }
}

impl<C> Drop for MappedTable<C> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, used by nothing else.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.mapped_len) };
    }
}

/// Which mode the program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Skb,
}

impl AttachedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Skb => "skb",
        }
    }
}

/// What the program needs besides the interface: written into its maps at start.
#[derive(Clone, Debug, Default)]
pub struct KernelSetup<'a> {
    pub max_sources: u32,
    pub blocklist: &'a [Cidr],
    /// Inbound payload at which a flow is reported (0: large downloads off).
    pub large_flow_bytes: u64,
    /// Bytes of each captured packet copied to userspace.
    pub capture_snaplen: u32,
    /// `Settings::mitigation`: off, drop or dry-run.
    pub mitigation: u64,
    /// Never dropped even when blocklisted (the allowlists); used when mitigating.
    pub exempt: &'a [Cidr],
    /// Room for this many bans in the kernel.
    pub max_bans: u32,
    /// Packets it refuses are not counted (`--filter`).
    pub filter: Option<PacketFilter>,
    /// The packet log's lines per second (`--packets`); `None`: log off.
    pub packet_log_rate: Option<u32>,
}

/// Perf buffer pages per CPU for captured packets (4 MiB each with 4 KiB pages):
/// room for a quarter second of a 100k pps flood at the default snap length.
const CAPTURE_PAGES_PER_CPU: usize = 1024;

pub struct XdpBackend {
    ebpf: Ebpf,
    iface: String,
    mode: AttachedMode,
    settings: Settings,
    large_flow_events: RingBuf<MapData>,
    /// Flows the kernel reported as large, with when each last grew.
    followed: HashMap<FlowKey, (FlowCounters, Instant, SystemTime)>,
    /// A per-source map the polling loop gave back (`recycle`), refilled by the next
    /// snapshot instead of a new one whose pages are all faulted in afresh.
    spare_sources: Option<SourceList<SourceCounters>>,
    /// The per-source table, mapped once.
    source_table: MappedTable<SourceCounters>,
    /// The SYN-ACKs sent, mapped once, when the egress classifier counts them.
    syn_acks: Option<MappedTable<u64>>,
    /// Packet-log records dropped because the printer's queue was full.
    packet_log_queue_full: Arc<AtomicU64>,
}

/// The trie key for a CIDR: IPv4 as IPv4-mapped IPv6, its prefix moved by 96 bits.
pub fn trie_key(cidr: &Cidr) -> Key<[u8; 16]> {
    match cidr.network() {
        IpAddr::V4(v4) => Key::new(u32::from(cidr.prefix()) + 96, v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => Key::new(u32::from(cidr.prefix()), v6.octets()),
    }
}

/// Marks the allowlisted parts of the blocklist in the kernel's trie as exempt, so
/// that mitigation never drops them (the allowlist wins, as in userspace): an
/// allowlisted prefix inside a blocklisted one is added as exempt (the longest match
/// wins), a blocklisted prefix inside an allowlisted one becomes exempt.
pub fn exempt_from_blocklist(ebpf: &mut Ebpf, blocklist: &[Cidr], exempt: &[Cidr]) -> Result<()> {
    let mut trie: LpmTrie<_, [u8; 16], u32> = ebpf
        .map_mut(names::BLOCKLIST)
        .context("map BLOCKLIST missing")?
        .try_into()?;
    for allowed in exempt {
        for listed in blocklist {
            let key = if allowed.contains(listed.network()) && allowed.prefix() <= listed.prefix() {
                trie_key(listed)
            } else if listed.contains(allowed.network()) {
                trie_key(allowed)
            } else {
                continue;
            };
            trie.insert(&key, BLOCKLIST_EXEMPT, 0).with_context(|| {
                format!("failed to exempt {allowed} from the kernel's blocklist")
            })?;
        }
    }
    Ok(())
}

/// Writes the blocklist into the kernel's trie and the settings into SETTINGS.
pub fn configure(ebpf: &mut Ebpf, blocklist: &[Cidr], settings: &Settings) -> Result<()> {
    let mut trie: LpmTrie<_, [u8; 16], u32> = ebpf
        .map_mut(names::BLOCKLIST)
        .context("map BLOCKLIST missing")?
        .try_into()?;
    for (index, cidr) in blocklist.iter().enumerate() {
        trie.insert(&trie_key(cidr), index as u32, 0)
            .with_context(|| format!("failed to add {cidr} to the kernel's blocklist"))?;
    }
    write_settings(ebpf, settings)
}

/// Writes `settings`, with the per-source table's shape filled in.
fn write_settings(ebpf: &mut Ebpf, settings: &Settings) -> Result<()> {
    let entries = match ebpf.map(names::SOURCE_TABLE) {
        Some(Map::Array(data)) => data
            .info()
            .with_context(|| format!("failed to query map {}", names::SOURCE_TABLE))?
            .max_entries(),
        _ => bail!("map {} missing", names::SOURCE_TABLE),
    };
    let settings = Settings {
        source_sets: source_table_sets(entries),
        ..*settings
    };
    let mut array: Array<_, Settings> = ebpf
        .map_mut("SETTINGS")
        .context("map SETTINGS missing")?
        .try_into()?;
    array
        .set(0, settings, 0)
        .context("failed to write SETTINGS")
}

/// Attaches the egress classifier (through a TCX link on kernels from 6.6, which the
/// kernel removes when the monitor exits, however it exits).
fn attach_egress(ebpf: &mut Ebpf, iface: &str) -> Result<()> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(names::EGRESS_PROGRAM)
        .context("egress program missing from the object")?
        .try_into()?;
    program
        .load()
        .context("failed to load the egress classifier")?;
    program
        .attach(iface, TcAttachType::Egress)
        .with_context(|| format!("failed to attach the egress classifier to `{iface}`"))?;
    Ok(())
}

/// SYN-ACKs sent per destination.
pub fn read_syn_acks_sent(ebpf: &Ebpf) -> Result<SourceList<u64>> {
    Ok(syn_acks_sent(&MappedTable::map(
        ebpf,
        names::SYN_ACKS_SENT,
    )?))
}

fn syn_acks_sent(table: &MappedTable<u64>) -> SourceList<u64> {
    let mut sent = SourceList::default();
    table.read_into(&mut sent, |sum, more| *sum += more);
    sent
}

/// Frames mitigation dropped (or would have) per source, summed over CPUs.
pub fn read_dropped(ebpf: &Ebpf) -> Result<HashMap<IpAddr, Tally>> {
    read_tallies(ebpf, names::DROPPED_SOURCES)
}

/// Puts `source` in BANS (`Some`) or takes it out, and returns how many are there.
pub fn set_ban(ebpf: &mut Ebpf, source: IpAddr, entry: Option<BanEntry>) -> Result<u64> {
    let mut bans: BpfHashMap<_, SourceKey, BanEntry> = ebpf
        .map_mut(names::BANS)
        .context("map BANS missing")?
        .try_into()?;
    let key = SourceKey::from_ip(source);
    match entry {
        Some(entry) => bans
            .insert(key, entry, 0)
            .with_context(|| format!("failed to ban {source} in the kernel"))?,
        None => match bans.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(err) => {
                return Err(anyhow!(err).context(format!("failed to unban {source}")));
            }
        },
    }
    Ok(bans.keys().count() as u64)
}

/// Traffic to blocklisted destinations, summed over CPUs.
pub fn read_listed_destinations(ebpf: &Ebpf) -> Result<HashMap<IpAddr, Tally>> {
    read_tallies(ebpf, "BLOCKLISTED_DESTINATIONS")
}

/// A per-CPU hash map of tallies by address, summed over CPUs, read in batches (see
/// `batch`).
fn read_tallies(ebpf: &Ebpf, name: &str) -> Result<HashMap<IpAddr, Tally>> {
    let mut tallies = HashMap::new();
    super::batch::for_each_per_cpu_entry(
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

/// CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads) to wall-clock time, from one
/// reading of both clocks: read it once for a batch of kernel timestamps.
#[derive(Clone, Copy, Debug)]
struct MonotonicToWall {
    wall: SystemTime,
    monotonic_ns: u64,
}

impl MonotonicToWall {
    fn now() -> Self {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        Self {
            wall: SystemTime::now(),
            monotonic_ns: now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64,
        }
    }

    fn at(&self, ns: u64) -> SystemTime {
        if ns <= self.monotonic_ns {
            self.wall - Duration::from_nanos(self.monotonic_ns - ns)
        } else {
            self.wall + Duration::from_nanos(ns - self.monotonic_ns)
        }
    }
}

fn flow_totals(key: &FlowKey, counters: &FlowCounters, last_grew: SystemTime) -> FlowTotals {
    let ip = |addr: &monitor_common::Addr| SourceKey { addr: *addr }.ip();
    FlowTotals {
        protocol: key.protocol,
        src: SocketAddr::new(ip(&key.src), key.src_port),
        dst: SocketAddr::new(ip(&key.dst), key.dst_port),
        payload_bytes: counters.payload_bytes,
        packets: counters.packets,
        first_seen: MonotonicToWall::now().at(counters.first_seen_ns),
        last_grew,
    }
}

impl XdpBackend {
    /// Loads the program, configures it and attaches it to `iface`.
    pub fn attach(iface_name: &str, mode: XdpModeArg, setup: &KernelSetup) -> Result<Self> {
        iface::index(iface_name)?;
        check_privileges()?;
        let mut ebpf = load_object_sized(
            setup.max_sources,
            (setup.blocklist.len() + setup.exempt.len()) as u32,
            setup.max_bans,
        )?;
        start_kernel_log(&mut ebpf);
        let settings = Settings {
            scan_epoch: 1,
            blocklist_active: u64::from(!setup.blocklist.is_empty()),
            blocklist_generation: 1,
            large_flow_bytes: setup.large_flow_bytes,
            captures_armed: 0,
            capture_snaplen: u64::from(setup.capture_snaplen),
            mitigation: setup.mitigation,
            bans: 0,
            packet_view: if setup.filter.is_some() {
                VIEW_FILTER
            } else {
                0
            } | if setup.packet_log_rate.is_some() {
                VIEW_LOG
            } else {
                0
            },
            filter: setup.filter.unwrap_or_default(),
            packet_log_rate: u64::from(setup.packet_log_rate.unwrap_or(0)),
            // Filled in by `write_settings`.
            source_sets: 0,
        };
        configure(&mut ebpf, setup.blocklist, &settings)?;
        if setup.mitigation != 0 {
            exempt_from_blocklist(&mut ebpf, setup.blocklist, setup.exempt)?;
        }
        let large_flow_events = RingBuf::try_from(
            ebpf.take_map("LARGE_FLOWS")
                .context("map LARGE_FLOWS missing")?,
        )?;
        let program = load_program(&mut ebpf, names::MONITOR_PROGRAM)?;
        let attach = |program: &mut Xdp, mode: XdpMode, label: &str| {
            program.attach(iface_name, mode).map_err(|err| {
                let busy = matches!(&err, ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::EBUSY));
                let err = anyhow!(err);
                if busy {
                    err.context(format!(
                        "interface `{iface_name}` already has an XDP program attached \
                         (is another monitor running on it?)"
                    ))
                } else {
                    err.context(format!("failed to attach XDP to `{iface_name}` in {label} mode"))
                }
            })
        };
        let mode = match mode {
            XdpModeArg::Native => {
                attach(program, XdpMode::Driver, "native")
                    .map_err(|e| anyhow!("{e:#}; try --xdp-mode skb"))?;
                AttachedMode::Native
            }
            XdpModeArg::Skb => {
                attach(program, XdpMode::Skb, "skb")?;
                AttachedMode::Skb
            }
            XdpModeArg::Auto => match attach(program, XdpMode::Driver, "native") {
                Ok(_) => AttachedMode::Native,
                Err(native) if format!("{native:#}").contains("already has an XDP program") => {
                    return Err(native);
                }
                Err(native) => {
                    warn!("{native:#}; falling back to generic (skb) mode, which is slower");
                    attach(program, XdpMode::Skb, "skb")?;
                    AttachedMode::Skb
                }
            },
        };
        let egress = match attach_egress(&mut ebpf, iface_name) {
            Ok(()) => true,
            Err(err) => {
                warn!(
                    "SYN-ACKs sent are not counted, so the SYN:SYN-ACK ratio check is off: {err:#}"
                );
                false
            }
        };
        let source_table = MappedTable::map(&ebpf, names::SOURCE_TABLE)?;
        let syn_acks = match egress {
            true => Some(MappedTable::map(&ebpf, names::SYN_ACKS_SENT)?),
            false => None,
        };
        Ok(Self {
            ebpf,
            iface: iface_name.to_owned(),
            mode,
            settings,
            large_flow_events,
            followed: HashMap::new(),
            spare_sources: None,
            source_table,
            syn_acks,
            packet_log_queue_full: Arc::default(),
        })
    }

    /// Large flows: new ones from the ring buffer, then the current counters of every
    /// flow followed, letting go of those gone quiet or evicted.
    fn large_flows(&mut self) -> Result<Vec<FlowTotals>> {
        let now = Instant::now();
        while let Some(item) = self.large_flow_events.next() {
            if item.len() < size_of::<LargeFlowEvent>() {
                continue;
            }
            // SAFETY: the program writes a LargeFlowEvent, a plain-old-data struct.
            let event: LargeFlowEvent =
                unsafe { item.as_ptr().cast::<LargeFlowEvent>().read_unaligned() };
            self.followed
                .insert(event.key, (event.counters, now, SystemTime::now()));
        }
        let flows: BpfHashMap<_, FlowKey, FlowCounters> = self
            .ebpf
            .map("FLOWS")
            .context("map FLOWS missing")?
            .try_into()?;
        self.followed
            .retain(|key, (counters, grew, grew_wall)| match flows.get(key, 0) {
                Ok(current) => {
                    if current.payload_bytes != counters.payload_bytes {
                        *counters = current;
                        *grew = now;
                        *grew_wall = SystemTime::now();
                    }
                    now.duration_since(*grew) < QUIET_FLOW
                }
                Err(_) => false,
            });
        Ok(self
            .followed
            .iter()
            .map(|(key, (counters, _, grew_wall))| flow_totals(key, counters, *grew_wall))
            .collect())
    }

    /// Points `target` at capture `id` in CAPTURE_TARGETS, or removes it (`None`), and
    /// tells the program how many targets are armed.
    fn set_capture_target(&mut self, target: CaptureTarget, id: Option<u32>) -> Result<()> {
        let mut targets: BpfHashMap<_, SourceKey, u32> = self
            .ebpf
            .map_mut(names::CAPTURE_TARGETS)
            .context("map CAPTURE_TARGETS missing")?
            .try_into()?;
        let key = capture_key(target);
        match id {
            Some(id) => targets.insert(key, id, 0)?,
            None => match targets.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(err) => return Err(err.into()),
            },
        }
        self.settings.captures_armed = targets.keys().count() as u64;
        write_settings(&mut self.ebpf, &self.settings)
    }

    pub fn mode(&self) -> AttachedMode {
        self.mode
    }
}

impl Backend for XdpBackend {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn describe(&self) -> String {
        format!("xdp ({} mode) on {}", self.mode.as_str(), self.iface)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        let taken = Instant::now();
        // Sources before the host totals: the totals then cover at least what the
        // sources add up to (a top source never shows more than the whole host).
        let mut sources = self.spare_sources.take().unwrap_or_default();
        read_sources_into(&self.ebpf, &self.source_table, &mut sources)?;
        Ok(Snapshot {
            taken,
            global: read_global(&self.ebpf)?,
            sources,
            listed_destinations: read_listed_destinations(&self.ebpf)?,
            large_flows: self.large_flows()?,
            syn_acks_sent: self.syn_acks.as_ref().map(syn_acks_sent),
            capture_drops: None,
            dropped: if self.settings.mitigation != 0 {
                read_dropped(&self.ebpf)?
            } else {
                HashMap::new()
            },
        })
    }

    fn recycle(&mut self, old: Snapshot) {
        self.spare_sources = Some(old.sources);
    }

    fn can_mitigate(&self) -> bool {
        true
    }

    fn ban(&mut self, source: IpAddr, entry: BanEntry) -> Result<()> {
        self.settings.bans = set_ban(&mut self.ebpf, source, Some(entry))?;
        write_settings(&mut self.ebpf, &self.settings)
    }

    fn unban(&mut self, source: IpAddr) -> Result<()> {
        self.settings.bans = set_ban(&mut self.ebpf, source, None)?;
        write_settings(&mut self.ebpf, &self.settings)
    }

    fn set_scan_epoch(&mut self, epoch: u64) -> Result<()> {
        self.settings.scan_epoch = epoch;
        write_settings(&mut self.ebpf, &self.settings)
    }

    fn arm_capture(&mut self, id: u32, target: CaptureTarget) -> Result<()> {
        self.set_capture_target(target, Some(id))
            .context("failed to arm the capture")
    }

    fn disarm_capture(&mut self, target: CaptureTarget) -> Result<()> {
        self.set_capture_target(target, None)
            .context("failed to disarm the capture")
    }

    fn captured_packets(&mut self) -> Option<tokio::sync::mpsc::Receiver<CapturedPacket>> {
        match start_capture_readers(&mut self.ebpf) {
            Ok(packets) => Some(packets),
            Err(err) => {
                warn!("triggered captures are off: {err:#}");
                None
            }
        }
    }

    fn packet_log(&mut self) -> Option<tokio::sync::mpsc::Receiver<PacketRecord>> {
        if self.settings.packet_view & VIEW_LOG == 0 {
            return None;
        }
        match start_packet_log_reader(&mut self.ebpf, self.packet_log_queue_full.clone()) {
            Ok(records) => Some(records),
            Err(err) => {
                warn!("the packet log is off: {err:#}");
                None
            }
        }
    }

    fn packet_log_skipped(&mut self) -> u64 {
        let kernel = read_packet_log_state(&self.ebpf)
            .map(|s| s.rate_skipped + s.ring_full)
            .unwrap_or_else(|err| {
                debug!("failed to read the packet log's state: {err:#}");
                0
            });
        kernel + self.packet_log_queue_full.load(Ordering::Relaxed)
    }
}

/// The packet log's per-CPU state, summed.
pub fn read_packet_log_state(ebpf: &Ebpf) -> Result<PacketLogState> {
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

/// One task drains the packet-log ring into a bounded queue; a full queue drops the
/// record (counted in `queue_full`) rather than hold up the ring.
fn start_packet_log_reader(
    ebpf: &mut Ebpf,
    queue_full: Arc<AtomicU64>,
) -> Result<tokio::sync::mpsc::Receiver<PacketRecord>> {
    let ring = RingBuf::try_from(
        ebpf.take_map(names::PACKET_LOG)
            .context("map PACKET_LOG missing")?,
    )?;
    // SAFETY: the ring owns its map fd and keeps it open until it is dropped, which
    // only happens with the AsyncFd that wraps it.
    let mut fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE)
    }
    .map_err(|e| {
        anyhow!(
            "failed to watch the packet log's ring buffer: {}",
            e.into_parts().1
        )
    })?;
    let (sender, receiver) = tokio::sync::mpsc::channel(PACKET_LOG_QUEUE);
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            let clock = MonotonicToWall::now();
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if item.len() < size_of::<PacketLogEvent>() {
                    continue;
                }
                // SAFETY: the program writes a PacketLogEvent, a plain-old-data struct.
                let event: PacketLogEvent =
                    unsafe { item.as_ptr().cast::<PacketLogEvent>().read_unaligned() };
                if sender.try_send(packet_record(&event, &clock)).is_err() {
                    queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            guard.clear_ready();
            if sender.is_closed() {
                return;
            }
        }
    });
    Ok(receiver)
}

fn packet_record(event: &PacketLogEvent, clock: &MonotonicToWall) -> PacketRecord {
    let ip = |addr: &monitor_common::Addr| SourceKey { addr: *addr }.ip();
    PacketRecord {
        timestamp: clock.at(event.ts_ns),
        src: ip(&event.src),
        dst: ip(&event.dst),
        class: class_from_u8(event.class),
        ip_proto: event.ip_proto,
        src_port: event.src_port,
        dst_port: event.dst_port,
        len: event.len,
        tcp_flags: event.tcp_flags,
    }
}

/// The CAPTURE_TARGETS key for a target: the source, or :: for every source.
fn capture_key(target: CaptureTarget) -> SourceKey {
    target.map_or_else(SourceKey::default, SourceKey::from_ip)
}

/// One reader task per CPU drains that CPU's perf buffer into a bounded queue. A full
/// queue or a full perf buffer loses packets of the capture (counted and logged), never
/// delays the polling loop or the XDP program.
fn start_capture_readers(ebpf: &mut Ebpf) -> Result<tokio::sync::mpsc::Receiver<CapturedPacket>> {
    let mut array = PerfEventArray::try_from(
        ebpf.take_map(names::CAPTURED)
            .context("map CAPTURED missing")?,
    )?;
    let (sender, receiver) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
    let cpus = aya::util::online_cpus().map_err(|(_, err)| err)?;
    for cpu in cpus {
        let buffer = array
            .open(cpu, Some(CAPTURE_PAGES_PER_CPU))
            .with_context(|| format!("failed to open the capture buffer of CPU {cpu}"))?;
        // SAFETY: the buffer owns its perf fd and keeps it open until it is dropped,
        // which only happens with the AsyncFd that wraps it.
        let mut fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(buffer, tokio::io::Interest::READABLE)
        }
        .map_err(|e| {
            anyhow!(
                "failed to watch the capture buffer of CPU {cpu}: {}",
                e.into_parts().1
            )
        })?;
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut lost = 0u64;
            // One warning per CPU at most every few seconds, however hard the flood.
            let mut last_warning: Option<Instant> = None;
            loop {
                let Ok(mut guard) = fd.readable_mut().await else {
                    return;
                };
                // One clock reading for the whole drain, not two per packet.
                let clock = MonotonicToWall::now();
                guard.get_inner_mut().for_each(|event| match event {
                    PerfEvent::Sample { head, tail } => {
                        let sample = [head, tail].concat();
                        match parse_captured(&sample, &clock) {
                            Some(packet) => {
                                if sender.try_send(packet).is_err() {
                                    lost += 1;
                                }
                            }
                            None => lost += 1,
                        }
                    }
                    PerfEvent::Lost { count } => lost += count,
                });
                guard.clear_ready();
                if lost > 0 && last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    warn!("capture on CPU {cpu} lost {lost} packets (buffers full)");
                    lost = 0;
                    last_warning = Some(Instant::now());
                }
                if sender.is_closed() {
                    return;
                }
            }
        });
    }
    Ok(receiver)
}

/// A perf sample: a CaptureMeta, then the packet's first bytes.
fn parse_captured(sample: &[u8], clock: &MonotonicToWall) -> Option<CapturedPacket> {
    let header = sample.get(..size_of::<CaptureMeta>())?;
    // SAFETY: CaptureMeta is plain old data; the length was checked above.
    let meta: CaptureMeta = unsafe { header.as_ptr().cast::<CaptureMeta>().read_unaligned() };
    let data = sample.get(size_of::<CaptureMeta>()..)?;
    let caplen = (meta.caplen as usize).min(data.len());
    Some(CapturedPacket {
        capture_id: meta.capture_id,
        timestamp: clock.at(meta.ts_ns),
        orig_len: meta.len,
        data: data[..caplen].to_vec(),
    })
}

/// Forwards the program's rare diagnostics (aya-log) to our log. The program logs
/// nothing per packet, so this task is idle in normal operation.
fn start_kernel_log(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => {
            debug!("kernel log not available: {err}");
            return;
        }
    };
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        // SAFETY: the logger owns its ring buffer's fd and keeps it open until it is
        // dropped, which only happens when the AsyncFd that wraps it is dropped.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
        };
        let Ok(mut fd) = registered else {
            return;
        };
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
