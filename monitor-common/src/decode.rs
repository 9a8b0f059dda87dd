//! The packet-decoding rules: Ethernet, up to two VLAN tags, IPv4 (with IHL and
//! fragments), IPv6 (with a bounded extension-header walk), TCP, UDP, ICMP, ICMPv6.
//!
//! Every frame gets exactly one [`Class`], so the per-class counters add up to the
//! total. A frame whose headers end early or contradict themselves is `Malformed`;
//! the decoder never reads a field it has not bounds-checked.
//!
//! The same code runs in the XDP program, where how it is written decides what LLVM
//! makes of it under BPF's ten registers and the kernel's verifier:
//! - a header is read whole, in one bounds check, rather than field by field;
//! - one `let else` per read, never a tuple of Options: a tuple leaves the payload of a
//!   `None` undefined, and the verifier trips over LLVM spilling such a value.

use crate::frame::Frame;

pub const ETH_HLEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const VLAN_HLEN: usize = 4;
/// 802.1ad outer tag plus 802.1Q inner tag; a third tag is left undecoded (`NonIp`).
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked before giving up; a chain longer than this is
/// counted as malformed rather than guessed at.
pub const MAX_IPV6_EXT_HEADERS: usize = 6;
/// No header is looked for past this offset. It bounds the walk for the verifier, and
/// no honest packet's headers are this long.
pub const MAX_HEADER_OFFSET: usize = 2048;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// An IP address as the 16 bytes of IPv6 (IPv4 as IPv4-mapped, `::ffff:a.b.c.d`), in
/// network order, held as two words with the same memory image as `[u8; 16]`. Two
/// words instead of sixteen bytes keep the XDP program small: LLVM would otherwise
/// carry every byte in its own register or stack slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr(pub [u64; 2]);

impl Addr {
    pub const UNSPECIFIED: Self = Self([0, 0]);

    #[inline(always)]
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self([
            u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            u64::from_ne_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        ])
    }

    /// `::ffff:a.b.c.d`
    #[inline(always)]
    pub const fn ipv4_mapped(a: [u8; 4]) -> Self {
        Self([
            0,
            u64::from_ne_bytes([0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]),
        ])
    }

    #[inline(always)]
    pub const fn bytes(&self) -> [u8; 16] {
        let (a, b) = (self.0[0].to_ne_bytes(), self.0[1].to_ne_bytes());
        [
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1], b[2], b[3], b[4], b[5],
            b[6], b[7],
        ]
    }

    /// Word-wise equality (no `bcmp` call, which BPF does not have).
    #[inline(always)]
    pub fn same(&self, other: &Self) -> bool {
        self.0[0] == other.0[0] && self.0[1] == other.0[1]
    }
}

/// The one bucket every frame is counted in.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Tcp = 0,
    Udp = 1,
    /// ICMP and ICMPv6.
    Icmp = 2,
    /// IP with another L4 protocol (GRE, ESP, SCTP, ...).
    Other = 3,
    /// Not IP: ARP, LLDP, a third VLAN tag, ...
    NonIp = 4,
    /// Truncated or inconsistent headers.
    Malformed = 5,
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// No valid IP header was found.
    None = 0,
    Ipv4 = 4,
    Ipv6 = 6,
}

/// What the decoder learnt of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    pub class: Class,
    pub family: Family,
    /// Source and destination; IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    pub src: Addr,
    pub dst: Addr,
    /// The IP protocol number (after the IPv6 extension headers), 255 when unknown.
    pub ip_proto: u8,
    /// TCP/UDP ports; zero when the L4 header was not decoded.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte; zero for anything but decoded TCP.
    pub tcp_flags: u8,
    /// Part of a fragmented datagram (IPv4 MF or offset, IPv6 fragment header).
    pub fragment: bool,
    /// A non-first fragment: the L4 header is not in this frame, so none was read.
    pub later_fragment: bool,
    /// L4 payload bytes (after the TCP/UDP header), from the IP length fields; zero
    /// when the L4 header was not decoded.
    pub payload_len: u32,
}

impl PacketInfo {
    #[inline(always)]
    const fn malformed() -> Self {
        Self {
            class: Class::Malformed,
            family: Family::None,
            src: Addr::UNSPECIFIED,
            dst: Addr::UNSPECIFIED,
            ip_proto: 255,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            fragment: false,
            later_fragment: false,
            payload_len: 0,
        }
    }

    /// Whether the source address is known (a valid IP header was decoded).
    #[inline(always)]
    pub fn has_source(&self) -> bool {
        !matches!(self.family, Family::None)
    }

    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.class == Class::Tcp && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    #[inline(always)]
    pub fn is_syn_ack(&self) -> bool {
        self.class == Class::Tcp && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK
    }

    #[inline(always)]
    pub fn is_rst(&self) -> bool {
        self.class == Class::Tcp && self.tcp_flags & TCP_RST != 0
    }

    #[inline(always)]
    pub fn is_fin(&self) -> bool {
        self.class == Class::Tcp && self.tcp_flags & TCP_FIN != 0
    }
}

/// The class an IP protocol number falls in when its header is not (or cannot be) read.
#[inline(always)]
const fn class_of(ip_proto: u8) -> Class {
    match ip_proto {
        IPPROTO_TCP => Class::Tcp,
        IPPROTO_UDP => Class::Udp,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => Class::Icmp,
        _ => Class::Other,
    }
}

/// Whether the frame holds at least `end` bytes, checked through `read` so that the
/// kernel side proves it to the verifier the same way as every other access.
#[inline(always)]
fn holds<F: Frame + ?Sized>(frame: &F, end: usize) -> bool {
    end == 0 || frame.read::<1>(end - 1).is_some()
}

/// Decodes one frame.
#[inline(always)]
pub fn decode<F: Frame + ?Sized>(frame: &F) -> PacketInfo {
    let mut info = PacketInfo::malformed();
    let Some(mut ethertype) = frame.be16_at(ETH_HLEN - 2) else {
        return info;
    };
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        // The tag is TCI (2 bytes) then the inner EtherType.
        let Some(inner) = frame.be16_at(offset + 2) else {
            return info;
        };
        ethertype = inner;
        offset += VLAN_HLEN;
    }
    match ethertype {
        ETHERTYPE_IPV4 => decode_ipv4(frame, offset, &mut info),
        ETHERTYPE_IPV6 => decode_ipv6(frame, offset, &mut info),
        _ => info.class = Class::NonIp,
    }
    info
}

#[inline(always)]
fn decode_ipv4<F: Frame + ?Sized>(frame: &F, offset: usize, info: &mut PacketInfo) {
    // The fixed header in one read: one bounds check instead of one per field.
    let Some(h) = frame.read::<20>(offset) else {
        return;
    };
    let version_ihl = h[0];
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if version_ihl >> 4 != 4 || header_len < 20 || total_len < header_len {
        return;
    }
    if header_len > 20 && !holds(frame, offset + header_len) {
        return;
    }
    let proto = h[9];
    info.family = Family::Ipv4;
    info.src = Addr::ipv4_mapped([h[12], h[13], h[14], h[15]]);
    info.dst = Addr::ipv4_mapped([h[16], h[17], h[18], h[19]]);
    let flags_fragment = u16::from_be_bytes([h[6], h[7]]);
    let more_fragments = flags_fragment & 0x2000 != 0;
    let fragment_offset = flags_fragment & 0x1fff;
    info.fragment = more_fragments || fragment_offset != 0;
    info.ip_proto = proto;
    if fragment_offset != 0 {
        info.later_fragment = true;
        info.class = class_of(proto);
        return;
    }
    decode_l4(frame, offset + header_len, offset + total_len, proto, info);
}

#[inline(always)]
fn decode_ipv6<F: Frame + ?Sized>(frame: &F, offset: usize, info: &mut PacketInfo) {
    let Some(h) = frame.read::<40>(offset) else {
        return;
    };
    if h[0] >> 4 != 6 {
        return;
    }
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&h[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    info.family = Family::Ipv6;
    info.src = Addr([word(8), word(16)]);
    info.dst = Addr([word(24), word(32)]);

    let datagram_end = offset + 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut next = h[6];
    let mut offset = offset + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                // Next header, then the length in 8-octet units not counting the first.
                let Some([following, len_units]) = frame.read::<2>(offset) else {
                    return;
                };
                next = following;
                offset += (usize::from(len_units) + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some([following, _, off_hi, off_lo]) = frame.read::<4>(offset) else {
                    return;
                };
                next = following;
                offset += 8;
                info.fragment = true;
                if u16::from_be_bytes([off_hi, off_lo]) >> 3 != 0 {
                    info.ip_proto = next;
                    info.later_fragment = true;
                    info.class = class_of(next);
                    return;
                }
            }
            _ => break,
        }
    }
    if matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT
    ) {
        // Chain longer than the walk: leave it malformed (but with its addresses).
        return;
    }
    info.ip_proto = next;
    decode_l4(frame, offset, datagram_end, next, info);
}

#[inline(always)]
/// `datagram_end`: where the IP datagram ends by its length fields (the frame may be
/// longer, padded, or shorter, cut by a snap length).
fn decode_l4<F: Frame + ?Sized>(
    frame: &F,
    offset: usize,
    datagram_end: usize,
    proto: u8,
    info: &mut PacketInfo,
) {
    if offset > MAX_HEADER_OFFSET {
        return;
    }
    match proto {
        IPPROTO_TCP => {
            let Some(t) = frame.read::<20>(offset) else {
                return;
            };
            let header_len = usize::from(t[12] >> 4) * 4;
            if header_len < 20 || (header_len > 20 && !holds(frame, offset + header_len)) {
                return;
            }
            info.src_port = u16::from_be_bytes([t[0], t[1]]);
            info.dst_port = u16::from_be_bytes([t[2], t[3]]);
            info.tcp_flags = t[13];
            info.payload_len = datagram_end.saturating_sub(offset + header_len) as u32;
            info.class = Class::Tcp;
        }
        IPPROTO_UDP => {
            let Some(u) = frame.read::<8>(offset) else {
                return;
            };
            info.src_port = u16::from_be_bytes([u[0], u[1]]);
            info.dst_port = u16::from_be_bytes([u[2], u[3]]);
            info.payload_len = datagram_end.saturating_sub(offset + 8) as u32;
            info.class = Class::Udp;
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            // Type, code, checksum and the 4-byte rest-of-header every message has.
            if frame.read::<8>(offset).is_none() {
                return;
            }
            info.class = Class::Icmp;
        }
        _ => info.class = Class::Other,
    }
}

#[cfg(test)]
mod tests;
