//! The packet view: the filter that narrows what is counted (`--filter`) and the
//! packet log (`--packets`). Both are off unless asked for, and off they cost the XDP
//! program one branch per packet on [`Settings::packet_view`](crate::counters::Settings).

use crate::decode::{Addr, Class, PacketInfo};

/// `Settings::packet_view` bit: a filter is set; packets it refuses are not counted.
pub const VIEW_FILTER: u64 = 1;
/// `Settings::packet_view` bit: matching packets go to the packet-log ring buffer.
pub const VIEW_LOG: u64 = 2;

/// `PacketFilter::terms` bits.
pub const TERM_CLASS: u32 = 1;
/// The host term applies to the source address.
pub const TERM_SRC_HOST: u32 = 2;
/// The host term applies to the destination address (both bits: either address).
pub const TERM_DST_HOST: u32 = 4;
pub const TERM_SRC_PORT: u32 = 8;
pub const TERM_DST_PORT: u32 = 16;

/// A conjunction of at most one protocol, one host and one port term, as the kernel
/// (and any other backend) evaluates it. Userspace parses the text form
/// (`tcp and port 443 and host 10.0.0.1`) into this.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketFilter {
    /// IPv4 as IPv4-mapped IPv6, as in [`PacketInfo`].
    pub host: Addr,
    /// `TERM_*` bits: which terms are set; no bits matches every IP packet.
    pub terms: u32,
    pub port: u16,
    /// A [`Class`] as `u8`: `Tcp`, `Udp` or `Icmp` (ICMP and ICMPv6).
    pub class: u8,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, so that the Pod type has none implicit; public so that other crates can build the struct"
    )]
    pub _pad: u8,
}

impl PacketFilter {
    /// Whether an IP packet passes. A port term passes only TCP and UDP packets that
    /// carry their ports (not later fragments), as in pcap.
    #[inline(always)]
    pub fn matches(&self, info: &PacketInfo) -> bool {
        let terms = self.terms;
        if terms & TERM_CLASS != 0 && info.class() as u8 != self.class {
            return false;
        }
        if terms & (TERM_SRC_HOST | TERM_DST_HOST) != 0 {
            let src = terms & TERM_SRC_HOST != 0 && info.src.same(&self.host);
            let dst = terms & TERM_DST_HOST != 0 && info.dst.same(&self.host);
            if !(src || dst) {
                return false;
            }
        }
        if terms & (TERM_SRC_PORT | TERM_DST_PORT) != 0 {
            if !matches!(info.class(), Class::Tcp | Class::Udp) || info.later_fragment() {
                return false;
            }
            let src = terms & TERM_SRC_PORT != 0 && info.src_port() == self.port;
            let dst = terms & TERM_DST_PORT != 0 && info.dst_port() == self.port;
            if !(src || dst) {
                return false;
            }
        }
        true
    }
}

/// One logged packet, as the kernel writes it into the packet-log ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketLogEvent {
    /// `bpf_ktime_get_ns` (`CLOCK_MONOTONIC`) when the hook saw it.
    pub ts_ns: u64,
    pub src: Addr,
    pub dst: Addr,
    /// Frame length.
    pub len: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number, 255 when unknown.
    pub ip_proto: u8,
    /// A [`Class`] as `u8`.
    pub class: u8,
    pub tcp_flags: u8,
    /// 4 or 6.
    pub family: u8,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, so that the Pod type has none implicit; public so that other crates can build the struct"
    )]
    pub _pad: u32,
}

impl PacketLogEvent {
    #[inline(always)]
    pub fn of(info: &PacketInfo, len: u64, ts_ns: u64) -> Self {
        Self {
            ts_ns,
            src: info.src,
            dst: info.dst,
            len: len as u32,
            src_port: info.src_port(),
            dst_port: info.dst_port(),
            ip_proto: info.ip_proto(),
            class: info.class() as u8,
            tcp_flags: info.tcp_flags(),
            family: info.family() as u8,
            _pad: 0,
        }
    }
}

/// Per-CPU state of the packet log's rate cap, and what it skipped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketLogState {
    /// Start of the current one-second window (`bpf_ktime_get_ns`).
    pub window_start_ns: u64,
    /// Packets logged in it.
    pub logged_in_window: u64,
    /// Packets not logged because the window was full (cumulative).
    pub rate_skipped: u64,
    /// Packets not logged because the ring buffer was full (cumulative).
    pub ring_full: u64,
}

const SECOND_NS: u64 = 1_000_000_000;

impl PacketLogState {
    /// Whether one more packet may be logged at `now_ns`, at most `rate` per window
    /// of a second; counts the refusal when not.
    #[inline(always)]
    pub fn admit(&mut self, now_ns: u64, rate: u64) -> bool {
        if now_ns.wrapping_sub(self.window_start_ns) >= SECOND_NS {
            self.window_start_ns = now_ns;
            self.logged_in_window = 0;
        }
        if self.logged_in_window >= rate {
            self.rate_skipped += 1;
            return false;
        }
        self.logged_in_window += 1;
        true
    }
}

/// The [`Class`] of a `class` byte, for userspace.
pub fn class_from_u8(class: u8) -> Class {
    match class {
        0 => Class::Tcp,
        1 => Class::Udp,
        2 => Class::Icmp,
        3 => Class::Other,
        4 => Class::NonIp,
        _ => Class::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        builder::{L4, Packet},
        decode::{TCP_SYN, decode},
    };

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> PacketInfo {
        decode(
            Packet::ipv4(
                src,
                dst,
                L4::Tcp {
                    src_port: sport,
                    dst_port: dport,
                    flags: TCP_SYN,
                },
            )
            .build()
            .as_slice(),
        )
    }

    #[test]
    fn an_empty_filter_passes_everything() {
        assert!(PacketFilter::default().matches(&tcp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)));
    }

    #[test]
    fn terms_are_anded_and_host_and_port_take_either_side_unless_directed() {
        let filter = PacketFilter {
            host: Addr::ipv4_mapped([10, 0, 0, 1]),
            terms: TERM_CLASS | TERM_SRC_HOST | TERM_DST_HOST | TERM_SRC_PORT | TERM_DST_PORT,
            port: 443,
            class: Class::Tcp as u8,
            _pad: 0,
        };
        assert!(filter.matches(&tcp([10, 0, 0, 1], [10, 0, 0, 2], 5000, 443)));
        assert!(filter.matches(&tcp([10, 0, 0, 2], [10, 0, 0, 1], 443, 5000)));
        assert!(!filter.matches(&tcp([10, 0, 0, 3], [10, 0, 0, 2], 5000, 443)));
        assert!(!filter.matches(&tcp([10, 0, 0, 1], [10, 0, 0, 2], 5000, 80)));
        let udp = decode(
            Packet::ipv4(
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                L4::Udp {
                    src_port: 5000,
                    dst_port: 443,
                },
            )
            .build()
            .as_slice(),
        );
        assert!(!filter.matches(&udp));
        let dst_only = PacketFilter {
            terms: TERM_DST_PORT,
            ..filter
        };
        assert!(dst_only.matches(&tcp([9, 9, 9, 9], [8, 8, 8, 8], 1, 443)));
        assert!(!dst_only.matches(&tcp([9, 9, 9, 9], [8, 8, 8, 8], 443, 1)));
    }

    #[test]
    fn the_rate_cap_admits_rate_per_second_and_counts_the_rest() {
        let mut state = PacketLogState::default();
        let start = 5 * SECOND_NS;
        let admitted = (0..10).filter(|i| state.admit(start + i, 3)).count();
        assert_eq!((admitted, state.rate_skipped), (3, 7));
        assert!(state.admit(start + SECOND_NS, 3), "a new window");
    }
}
