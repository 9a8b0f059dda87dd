//! Map layouts. Fields are laid out so the structs have no implicit padding (the
//! kernel copies them byte for byte; explicit `_pad` fields fill any gap), and the
//! counters are `u64` so userspace can sum the per-CPU copies.

use crate::decode::{Addr, Class, Family, PacketInfo};

/// A packet count and the bytes those packets carried (whole frames, as the hook saw
/// them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub packets: u64,
    pub bytes: u64,
}

impl Tally {
    #[inline(always)]
    pub fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }

    #[must_use]
    pub fn merged(self, other: Self) -> Self {
        Self {
            packets: self.packets.wrapping_add(other.packets),
            bytes: self.bytes.wrapping_add(other.bytes),
        }
    }
}

/// Host-wide counters: one per CPU in a per-CPU array of one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalCounters {
    pub total: Tally,
    // One class per frame: these six add up to `total`.
    pub tcp: Tally,
    pub udp: Tally,
    pub icmp: Tally,
    pub other: Tally,
    pub non_ip: Tally,
    pub malformed: Tally,
    // By family, for frames with a valid IP header.
    pub ipv4: Tally,
    pub ipv6: Tally,
    /// TCP SYN without ACK: connection attempts.
    pub syn: u64,
    pub syn_ack: u64,
    pub rst: u64,
    pub fin: u64,
    /// IPv4 and IPv6 fragments, first ones included.
    pub fragments: u64,
    /// Frames dropped by mitigation (in dry-run: those that would have been).
    pub dropped: Tally,
}

impl GlobalCounters {
    /// Counts one frame of `len` bytes.
    #[inline(always)]
    pub fn record(&mut self, info: &PacketInfo, len: u64) {
        self.total.add(len);
        match info.class() {
            Class::Tcp => self.tcp.add(len),
            Class::Udp => self.udp.add(len),
            Class::Icmp => self.icmp.add(len),
            Class::Other => self.other.add(len),
            Class::NonIp => self.non_ip.add(len),
            Class::Malformed => self.malformed.add(len),
        }
        match info.family() {
            Family::Ipv4 => self.ipv4.add(len),
            Family::Ipv6 => self.ipv6.add(len),
            Family::None => {}
        }
        if info.is_syn() {
            self.syn += 1;
        }
        if info.is_syn_ack() {
            self.syn_ack += 1;
        }
        if info.is_rst() {
            self.rst += 1;
        }
        if info.is_fin() {
            self.fin += 1;
        }
        if info.fragment() {
            self.fragments += 1;
        }
    }

    /// Field-by-field sum: how userspace folds the per-CPU copies into one.
    #[must_use]
    pub fn merged(self, o: Self) -> Self {
        Self {
            total: self.total.merged(o.total),
            tcp: self.tcp.merged(o.tcp),
            udp: self.udp.merged(o.udp),
            icmp: self.icmp.merged(o.icmp),
            other: self.other.merged(o.other),
            non_ip: self.non_ip.merged(o.non_ip),
            malformed: self.malformed.merged(o.malformed),
            ipv4: self.ipv4.merged(o.ipv4),
            ipv6: self.ipv6.merged(o.ipv6),
            syn: self.syn.wrapping_add(o.syn),
            syn_ack: self.syn_ack.wrapping_add(o.syn_ack),
            rst: self.rst.wrapping_add(o.rst),
            fin: self.fin.wrapping_add(o.fin),
            fragments: self.fragments.wrapping_add(o.fragments),
            dropped: self.dropped.merged(o.dropped),
        }
    }
}

/// Key of the per-source table: the source address, IPv4 as IPv4-mapped IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    pub addr: Addr,
}

/// Bits in a source's destination-port sketch (a multiple of 64).
pub const SCAN_PORT_BITS: usize = 256;
/// Bits in a source's destination-host sketch.
pub const SCAN_HOST_BITS: usize = 64;

/// Counters per source address (in the per-source table, `source_table`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounters {
    pub packets: u64,
    pub bytes: u64,
    pub syn: u64,
    pub udp: u64,
    pub icmp: u64,
    /// Packets sent while the source is on the blocklist.
    pub blocklisted: u64,
    /// The scan epoch the sketch below belongs to (userspace advances it every half
    /// scan window; a sketch from an older epoch is stale).
    pub scan_epoch: u64,
    /// Destination ports this source tried to open in `scan_epoch`: one bit per hash
    /// of the port, so distinct ports are estimated by linear counting, in bounded
    /// memory whatever the source sends.
    pub scan_ports: [u64; SCAN_PORT_BITS / 64],
    /// Destination hosts it tried, likewise.
    pub scan_hosts: u64,
}

/// What the per-packet counting needs besides the packet: written by userspace into a
/// one-entry array the program reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Current scan epoch (starts at 1, so zeroed counters are stale).
    pub scan_epoch: u64,
    /// Non-zero when the blocklist trie has entries.
    pub blocklist_active: u64,
    /// Bumped when the blocklist changes, so cached verdicts are looked up again. The
    /// list is written once at start for now, so it stays at 1.
    pub blocklist_generation: u64,
    /// Inbound payload bytes at which a flow is reported as a large download; 0: off.
    pub large_flow_bytes: u64,
    /// Entries in `CAPTURE_TARGETS`; 0 (no capture armed) skips the capture path.
    pub captures_armed: u64,
    /// Bytes of each captured packet copied to userspace.
    pub capture_snaplen: u64,
    /// What mitigation does with blocklisted and banned sources: `MITIGATION_OFF`,
    /// `MITIGATION_DROP` or `MITIGATION_DRY_RUN` (counted, passed).
    pub mitigation: u64,
    /// Entries in BANS; 0 skips the ban lookup (a hash lookup per packet otherwise).
    pub bans: u64,
    /// `view::VIEW_*` bits: filter set, packet log on. Zero skips both in one branch.
    pub packet_view: u64,
    /// Packets refused by it are not counted (`--filter`), except as dropped when
    /// mitigation drops them.
    pub filter: crate::view::PacketFilter,
    /// Packet-log lines per second, per CPU (userspace caps the sum too).
    pub packet_log_rate: u64,
    /// Sets in the per-source table (`source_table::source_table_sets` of its size),
    /// filled in by the loader whenever it writes the settings.
    pub source_sets: u64,
}

pub const MITIGATION_OFF: u64 = 0;
pub const MITIGATION_DROP: u64 = 1;
pub const MITIGATION_DRY_RUN: u64 = 2;

/// BLOCKLIST's value for an allowlisted prefix inside a blocklisted one: the longest
/// match wins, so the allowlist wins over the blocklist in the kernel as it does in
/// userspace.
pub const BLOCKLIST_EXEMPT: u32 = u32::MAX;

/// Value of one entry of BANS (keyed by `SourceKey`). The program only asks whether a
/// source is there; the rest says what the ban is to whoever dumps the map
/// (`bpftool map dump name BANS`), the policy in userspace being the authority.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BanEntry {
    /// When the ban was placed and when it ends, in seconds since the Unix epoch.
    pub since_unix_secs: u64,
    pub until_unix_secs: u64,
    /// The alert kind that confirmed it, as `AlertKind`'s index in userspace; for
    /// display only.
    pub reason: u32,
    /// Non-zero when placed in dry-run mode (counted, not dropped).
    pub dry_run: u32,
}

/// Largest snap length: bounds the copy for the verifier and the perf buffers.
pub const MAX_CAPTURE_SNAPLEN: u32 = 4_096;

/// Header of one captured packet in the perf buffer; the kernel appends `caplen`
/// bytes of the packet after it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureMeta {
    /// The capture this packet belongs to (`CAPTURE_TARGETS`' value).
    pub capture_id: u32,
    /// Length of the packet on the wire.
    pub len: u32,
    /// Bytes of it that follow this header.
    pub caplen: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, so that the Pod type has none implicit; public so that other crates can build the struct"
    )]
    pub _pad: u32,
    /// `bpf_ktime_get_ns` when the hook saw it.
    pub ts_ns: u64,
}

/// Whether a packet is one a source sends to open something: a TCP SYN without ACK, a
/// UDP datagram from an ephemeral port (a reply from a service port, DNS say, would
/// otherwise look like a scan of our ephemeral ports), or ICMP (for hosts only).
#[inline(always)]
fn probes_port(info: &PacketInfo) -> bool {
    info.is_syn()
        || (info.class() == Class::Udp && !info.later_fragment() && info.src_port() >= 1024)
}

/// A well-mixed 32-bit hash (murmur3's finalizer). Linear counting assumes values
/// land on bits as if at random: a plain multiplicative hash spreads a run of ports
/// too evenly and the estimate comes out a quarter too high.
#[inline(always)]
fn mix32(x: u32) -> u32 {
    let mut h = x ^ (x >> 16);
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Port `port`'s bit in the sketch.
#[inline(always)]
pub fn scan_port_bit(port: u16) -> usize {
    (mix32(u32::from(port)) as usize) & (SCAN_PORT_BITS - 1)
}

/// A destination address folded to the 32 bits its sketch bit is hashed from.
#[inline(always)]
fn fold_host(dst: &Addr) -> u32 {
    let folded = dst.0[0] ^ dst.0[1];
    (folded as u32) ^ ((folded >> 32) as u32)
}

/// What a packet adds to its source's scan sketch: its host, and its port when it
/// probes one. Everything the sketch bits are hashed from, so two equal probes set
/// the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    host: u32,
    port: Option<u16>,
}

impl Probe {
    #[inline(always)]
    fn of(info: &PacketInfo) -> Option<Self> {
        let port = probes_port(info).then_some(info.dst_port());
        (port.is_some() || info.class() == Class::Icmp).then(|| Self {
            host: fold_host(&info.dst),
            port,
        })
    }

    /// The probe as one non-zero word (zero stands for none).
    #[inline(always)]
    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "by value, the XDP program compiles to other instructions (its stack slots move)"
    )]
    fn key(&self) -> u64 {
        let port = match self.port {
            Some(port) => 1 << 16 | u64::from(port),
            None => 0,
        };
        1 << 63 | port << 32 | u64::from(self.host)
    }
}

/// Distinct values behind a sketch of `bits` bits with `set` of them set (linear
/// counting); a full sketch reports its ceiling, `bits * ln(bits)`.
pub fn estimate_distinct(set: u32, bits: u32) -> u32 {
    let m = f64::from(bits);
    let zero = f64::from(bits - set.min(bits));
    let estimate = if zero == 0.0 {
        m * libm_ln(m)
    } else {
        -m * libm_ln(zero / m)
    };
    (estimate + 0.5) as u32
}

/// Natural logarithm without std (the crate is `no_std`); only userspace calls it.
fn libm_ln(x: f64) -> f64 {
    // ln(x) = 2 atanh((x-1)/(x+1)), after scaling x into [0.5, 1) by powers of two.
    let mut x = x;
    let mut k = 0i32;
    while x >= 1.0 {
        x /= 2.0;
        k += 1;
    }
    while x < 0.5 {
        x *= 2.0;
        k -= 1;
    }
    let y = (x - 1.0) / (x + 1.0);
    let y2 = y * y;
    let (mut term, mut sum) = (y, 0.0);
    let mut n = 1.0;
    while n < 60.0 {
        sum += term / n;
        term *= y2;
        n += 2.0;
    }
    2.0 * sum + f64::from(k) * core::f64::consts::LN_2
}

impl SourceCounters {
    /// Counts one packet; `epoch` is the current scan epoch, `listed` whether the
    /// source is on the blocklist.
    #[inline(always)]
    pub fn record(&mut self, info: &PacketInfo, len: u64, epoch: u64, listed: bool) {
        self.count(info, len, listed);
        if let Some(probe) = Probe::of(info) {
            self.sketch(&probe, epoch);
        }
    }

    /// Counts one packet, all but the scan sketch.
    #[inline(always)]
    fn count(&mut self, info: &PacketInfo, len: u64, listed: bool) {
        self.packets += 1;
        self.bytes += len;
        if info.is_syn() {
            self.syn += 1;
        }
        match info.class() {
            Class::Udp => self.udp += 1,
            Class::Icmp => self.icmp += 1,
            _ => {}
        }
        if listed {
            self.blocklisted += 1;
        }
    }

    /// Adds a probe to the scan sketch of `epoch`.
    #[inline(always)]
    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "by value, the XDP program compiles to other instructions (its stack slots move)"
    )]
    fn sketch(&mut self, probe: &Probe, epoch: u64) {
        if self.scan_epoch != epoch {
            self.scan_epoch = epoch;
            self.scan_ports = [0; SCAN_PORT_BITS / 64];
            self.scan_hosts = 0;
        }
        if let Some(port) = probe.port {
            let bit = scan_port_bit(port);
            self.scan_ports[(bit / 64) & (SCAN_PORT_BITS / 64 - 1)] |= 1 << (bit % 64);
        }
        self.scan_hosts |= 1 << (mix32(probe.host) as usize & (SCAN_HOST_BITS - 1));
    }

    /// Field-by-field sum; the scan sketch of the newer epoch wins, two of the same
    /// epoch are joined. How per-CPU copies and cache slots fold into one.
    #[must_use]
    pub fn merged(self, o: Self) -> Self {
        let (scan_epoch, scan_ports, scan_hosts) = match self.scan_epoch.cmp(&o.scan_epoch) {
            core::cmp::Ordering::Greater => (self.scan_epoch, self.scan_ports, self.scan_hosts),
            core::cmp::Ordering::Less => (o.scan_epoch, o.scan_ports, o.scan_hosts),
            core::cmp::Ordering::Equal => {
                let mut ports = self.scan_ports;
                for (p, q) in ports.iter_mut().zip(o.scan_ports) {
                    *p |= q;
                }
                (self.scan_epoch, ports, self.scan_hosts | o.scan_hosts)
            }
        };
        Self {
            packets: self.packets.wrapping_add(o.packets),
            bytes: self.bytes.wrapping_add(o.bytes),
            syn: self.syn.wrapping_add(o.syn),
            udp: self.udp.wrapping_add(o.udp),
            icmp: self.icmp.wrapping_add(o.icmp),
            blocklisted: self.blocklisted.wrapping_add(o.blocklisted),
            scan_epoch,
            scan_ports,
            scan_hosts,
        }
    }

    /// Estimated distinct ports and hosts in the sketch.
    pub fn scan_estimate(&self) -> (u32, u32) {
        let ports: u32 = self.scan_ports.iter().map(|w| w.count_ones()).sum();
        (
            estimate_distinct(ports, SCAN_PORT_BITS as u32),
            estimate_distinct(self.scan_hosts.count_ones(), SCAN_HOST_BITS as u32),
        )
    }
}

impl SourceKey {
    #[inline(always)]
    pub fn same(&self, other: &Self) -> bool {
        self.addr.same(&other.addr)
    }
}

/// Slots in the per-CPU source cache (a power of two). 256 slots (of 128 bytes, see
/// the test) stay under the kernel's 32 KiB limit for one per-CPU value.
pub const SOURCE_CACHE_SLOTS: usize = 256;

/// One source's counts not yet added to the per-source table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceSlot {
    pub key: SourceKey,
    pub counters: SourceCounters,
    /// The blocklist's verdict on `key` (1: listed), valid while
    /// `blocklist_generation` matches the settings'.
    pub listed: u16,
    /// Times the slot has changed hands (wrapping). Userspace reads the caches before
    /// and after the per-source table: a slot whose count moved meanwhile was flushed
    /// into the table, and its source is read there again.
    pub takeovers: u16,
    pub blocklist_generation: u32,
    /// The last probe counted in the sketch (`Probe::key`), zero for none: a source
    /// repeating its probe, as a flood does, would set the same bits again, and the
    /// two hashes that find them are a sixth of the XDP program's work per packet.
    pub last_probe: u64,
}

impl SourceSlot {
    /// Whether the slot holds counts (a slot is empty until its first packet).
    #[inline(always)]
    pub fn is_occupied(&self) -> bool {
        self.counters.packets != 0
    }
}

/// A per-CPU, direct-mapped, write-combining cache in front of the per-source hash
/// table. A hash-table lookup costs ~40 ns per packet in the kernel (measured; see
/// BENCHMARKS.md) while an array slot costs a few, and a flood sends most packets from
/// the few sources already in their slots. A slot changing hands hands its counts to
/// the hash table; userspace adds both, so every count is still exact.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceCache {
    pub slots: [SourceSlot; SOURCE_CACHE_SLOTS],
}

impl Default for SourceCache {
    #[expect(
        clippy::large_stack_arrays,
        reason = "the per-CPU map value's size (32 KiB); only host tests build one"
    )]
    fn default() -> Self {
        const EMPTY: SourceSlot = SourceSlot {
            key: SourceKey {
                addr: Addr::UNSPECIFIED,
            },
            counters: SourceCounters {
                packets: 0,
                bytes: 0,
                syn: 0,
                udp: 0,
                icmp: 0,
                blocklisted: 0,
                scan_epoch: 0,
                scan_ports: [0; SCAN_PORT_BITS / 64],
                scan_hosts: 0,
            },
            listed: 0,
            takeovers: 0,
            blocklist_generation: 0,
            last_probe: 0,
        };
        Self {
            slots: [EMPTY; SOURCE_CACHE_SLOTS],
        }
    }
}

/// The slot a source maps to: its address folded to 32 bits, then a Fibonacci hash.
#[inline(always)]
pub fn source_slot(key: &SourceKey) -> usize {
    let [lo, hi] = key.addr.0;
    let folded = (lo ^ hi) as u32 ^ ((lo ^ hi) >> 32) as u32;
    (folded.wrapping_mul(0x9e37_79b1) >> (32 - SOURCE_CACHE_SLOTS.trailing_zeros())) as usize
        & (SOURCE_CACHE_SLOTS - 1)
}

impl SourceCache {
    /// Counts one packet from `key`. When the packet's slot held another source, that
    /// source's pending counts are first handed to `flush`, which adds them to the hash
    /// table. In place: a copy of the slot would take a quarter of the XDP program's
    /// 512-byte stack. `is_listed` is asked (it costs a trie lookup) only when the
    /// slot's verdict is missing or from an older blocklist. Returns that verdict.
    #[inline(always)]
    pub fn record(
        &mut self,
        key: &SourceKey,
        info: &PacketInfo,
        len: u64,
        settings: &Settings,
        is_listed: impl FnOnce(&SourceKey) -> bool,
        flush: impl FnOnce(&SourceSlot),
    ) -> bool {
        let generation = settings.blocklist_generation as u32;
        let slot = &mut self.slots[source_slot(key)];
        if !(slot.is_occupied() && slot.key.same(key)) {
            if slot.is_occupied() {
                flush(slot);
            }
            slot.key = *key;
            slot.counters = SourceCounters::default();
            slot.blocklist_generation = generation.wrapping_sub(1); // forces a lookup
            slot.last_probe = 0;
            slot.takeovers = slot.takeovers.wrapping_add(1);
        }
        if slot.blocklist_generation != generation {
            slot.listed = u16::from(settings.blocklist_active != 0 && is_listed(key));
            slot.blocklist_generation = generation;
        }
        // What `SourceCounters::record` does, with the sketch skipped for a repeated
        // probe: its bits are set already, unless the epoch moved on since.
        slot.counters.count(info, len, slot.listed != 0);
        if let Some(probe) = Probe::of(info) {
            let epoch = settings.scan_epoch;
            if probe.key() != slot.last_probe || slot.counters.scan_epoch != epoch {
                slot.counters.sketch(&probe, epoch);
                slot.last_probe = probe.key();
            }
        }
        slot.listed != 0
    }
}

/// Flow key of a large-download candidate: the 5-tuple as the packet carries it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, so that the Pod type has none implicit; public so that other crates can build the struct"
    )]
    pub _pad: [u8; 3],
}

impl FlowKey {
    #[inline(always)]
    pub fn of(info: &PacketInfo) -> Self {
        Self {
            src: info.src,
            dst: info.dst,
            src_port: info.src_port(),
            dst_port: info.dst_port(),
            protocol: info.ip_proto(),
            _pad: [0; 3],
        }
    }
}

/// Packets smaller than this are not followed per flow: they cannot make a download
/// (ACKs, DNS, SYNs), and following them would cost a hash lookup each.
pub const MIN_FLOW_PAYLOAD: u32 = 128;

/// Inbound payload of one flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub payload_bytes: u64,
    pub packets: u64,
    /// `bpf_ktime_get_ns` (`CLOCK_MONOTONIC`) of the first packet followed.
    pub first_seen_ns: u64,
    /// Non-zero once the flow has been reported as large.
    pub reported: u64,
}

/// Sent through a ring buffer the moment a flow's payload reaches the threshold.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LargeFlowEvent {
    pub key: FlowKey,
    pub counters: FlowCounters,
    pub now_ns: u64,
}

/// Per-destination counts of traffic to a blocklisted address.
pub type DestinationCounters = Tally;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` structs of `u64`s and byte arrays, no padding.
    unsafe impl aya::Pod for super::GlobalCounters {}
    unsafe impl aya::Pod for super::SourceKey {}
    unsafe impl aya::Pod for super::SourceCounters {}
    unsafe impl aya::Pod for super::SourceCache {}
    unsafe impl aya::Pod for crate::source_table::SourceEntry {}
    unsafe impl aya::Pod for crate::source_table::SynAckEntry {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowCounters {}
    unsafe impl aya::Pod for super::LargeFlowEvent {}
    unsafe impl aya::Pod for super::Tally {}
    unsafe impl aya::Pod for super::CaptureMeta {}
    unsafe impl aya::Pod for super::BanEntry {}
    unsafe impl aya::Pod for crate::decode::Addr {}
    unsafe impl aya::Pod for crate::view::PacketLogEvent {}
    unsafe impl aya::Pod for crate::view::PacketLogState {}
}

#[cfg(test)]
mod tests;

#[cfg(feature = "std")]
impl SourceKey {
    pub fn from_ip(ip: std::net::IpAddr) -> Self {
        let bytes = match ip {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        Self {
            addr: Addr::from_bytes(bytes),
        }
    }

    /// The address, as IPv4 when it is IPv4-mapped.
    pub fn ip(&self) -> std::net::IpAddr {
        std::net::Ipv6Addr::from(self.addr.bytes()).to_canonical()
    }
}
