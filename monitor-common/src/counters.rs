//! Map layouts. Every field is a `u64` so the structs have no padding (the kernel
//! copies them byte for byte) and so userspace can sum the per-CPU copies.

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
}

impl GlobalCounters {
    /// Counts one frame of `len` bytes.
    #[inline(always)]
    pub fn record(&mut self, info: &PacketInfo, len: u64) {
        self.total.add(len);
        match info.class {
            Class::Tcp => self.tcp.add(len),
            Class::Udp => self.udp.add(len),
            Class::Icmp => self.icmp.add(len),
            Class::Other => self.other.add(len),
            Class::NonIp => self.non_ip.add(len),
            Class::Malformed => self.malformed.add(len),
        }
        match info.family {
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
        if info.fragment {
            self.fragments += 1;
        }
    }

    /// Field-by-field sum: how userspace folds the per-CPU copies into one.
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
        }
    }
}

/// Key of the per-source table: the source address, IPv4 as IPv4-mapped IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    pub addr: Addr,
}

/// Counters per source address (per CPU, in an LRU per-CPU hash).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounters {
    pub packets: u64,
    pub bytes: u64,
    pub syn: u64,
    pub udp: u64,
    pub icmp: u64,
}

impl SourceCounters {
    #[inline(always)]
    pub fn record(&mut self, info: &PacketInfo, len: u64) {
        self.packets += 1;
        self.bytes += len;
        if info.is_syn() {
            self.syn += 1;
        }
        match info.class {
            Class::Udp => self.udp += 1,
            Class::Icmp => self.icmp += 1,
            _ => {}
        }
    }

    pub fn merged(self, o: Self) -> Self {
        Self {
            packets: self.packets.wrapping_add(o.packets),
            bytes: self.bytes.wrapping_add(o.bytes),
            syn: self.syn.wrapping_add(o.syn),
            udp: self.udp.wrapping_add(o.udp),
            icmp: self.icmp.wrapping_add(o.icmp),
        }
    }
}

impl SourceKey {
    #[inline(always)]
    pub fn same(&self, other: &Self) -> bool {
        self.addr.same(&other.addr)
    }
}

/// Slots in the per-CPU source cache (a power of two). 512 slots of 56 bytes stay
/// under the kernel's 32 KiB limit for one per-CPU value.
pub const SOURCE_CACHE_SLOTS: usize = 512;

/// One source's counts not yet added to the per-source table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceSlot {
    pub key: SourceKey,
    pub counters: SourceCounters,
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
    fn default() -> Self {
        Self {
            slots: [SourceSlot {
                key: SourceKey {
                    addr: Addr::UNSPECIFIED,
                },
                counters: SourceCounters {
                    packets: 0,
                    bytes: 0,
                    syn: 0,
                    udp: 0,
                    icmp: 0,
                },
            }; SOURCE_CACHE_SLOTS],
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
    /// source's pending counts are returned: the caller adds them to the hash table.
    #[inline(always)]
    pub fn record(&mut self, key: &SourceKey, info: &PacketInfo, len: u64) -> Option<SourceSlot> {
        let slot = &mut self.slots[source_slot(key)];
        if slot.is_occupied() && slot.key.same(key) {
            slot.counters.record(info, len);
            return None;
        }
        let evicted = slot.is_occupied().then_some(*slot);
        let mut counters = SourceCounters::default();
        counters.record(info, len);
        *slot = SourceSlot {
            key: *key,
            counters,
        };
        evicted
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` structs of `u64`s and byte arrays, no padding.
    unsafe impl aya::Pod for super::GlobalCounters {}
    unsafe impl aya::Pod for super::SourceKey {}
    unsafe impl aya::Pod for super::SourceCounters {}
    unsafe impl aya::Pod for super::SourceCache {}
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
