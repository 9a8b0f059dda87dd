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
//! - frames without IP leave through `Err` (see [`decode_ip`]);
//! - the result is a few words, not a dozen fields (see [`PacketInfo`]);
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

impl Class {
    /// The inverse of `as u8`.
    #[inline(always)]
    const fn from_bits(bits: u8) -> Self {
        match bits {
            0 => Self::Tcp,
            1 => Self::Udp,
            2 => Self::Icmp,
            3 => Self::Other,
            4 => Self::NonIp,
            _ => Self::Malformed,
        }
    }
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// No valid IP header was found.
    None = 0,
    Ipv4 = 4,
    Ipv6 = 6,
}

impl Family {
    /// The inverse of `as u8`.
    #[inline(always)]
    const fn from_bits(bits: u8) -> Self {
        match bits {
            4 => Self::Ipv4,
            6 => Self::Ipv6,
            _ => Self::None,
        }
    }
}

/// What the decoder learnt of one frame.
///
/// Besides the addresses, the fields are packed into two words and read through the
/// accessors. In the XDP program the result is carried through the decoder's early
/// returns and past helper calls, under BPF's ten registers: a dozen separate fields
/// spill there and cost stores on every path, two words mostly stay in registers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Source and destination; IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    pub src: Addr,
    pub dst: Addr,
    /// `Family` (bits 0-7), IP protocol (8-15), `FRAGMENT` and `LATER_FRAGMENT`.
    ip: u32,
    /// What the L4 header gave.
    l4: L4,
}

const FRAGMENT: u32 = 1 << 16;
const LATER_FRAGMENT: u32 = 1 << 17;

impl PacketInfo {
    /// A frame without a valid IP header: only its class is known.
    #[inline(always)]
    pub const fn without_ip(class: Class) -> Self {
        Self {
            src: Addr::UNSPECIFIED,
            dst: Addr::UNSPECIFIED,
            ip: Family::None as u32 | 255 << 8,
            l4: L4::class(class),
        }
    }

    /// A valid IP header, before anything past it is known: the protocol is unknown
    /// (255) and the class `Malformed` until the L4 header is read.
    #[inline(always)]
    const fn ip(family: Family, src: Addr, dst: Addr) -> Self {
        Self {
            src,
            dst,
            ip: family as u32 | 255 << 8,
            l4: L4::class(Class::Malformed),
        }
    }

    #[inline(always)]
    fn set_ip_proto(&mut self, ip_proto: u8) {
        self.ip = (self.ip & !0xff00) | u32::from(ip_proto) << 8;
    }

    #[inline(always)]
    fn set_fragment(&mut self) {
        self.ip |= FRAGMENT;
    }

    /// A non-first fragment of `ip_proto`: its class follows from the protocol, and
    /// it carries no L4 header.
    #[inline(always)]
    fn set_later_fragment(&mut self, ip_proto: u8) {
        self.set_ip_proto(ip_proto);
        self.ip |= FRAGMENT | LATER_FRAGMENT;
        self.l4 = L4::class(class_of(ip_proto));
    }

    #[inline(always)]
    pub fn class(&self) -> Class {
        Class::from_bits(self.l4.0 as u8)
    }

    #[inline(always)]
    pub fn family(&self) -> Family {
        Family::from_bits(self.ip as u8)
    }

    /// The IP protocol number (after the IPv6 extension headers), 255 when unknown.
    #[inline(always)]
    pub fn ip_proto(&self) -> u8 {
        (self.ip >> 8) as u8
    }

    /// TCP/UDP source port; zero when the L4 header was not decoded.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        let [hi, lo, _, _] = self.l4.ports();
        u16::from_be_bytes([hi, lo])
    }

    /// TCP/UDP destination port; zero when the L4 header was not decoded.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        let [_, _, hi, lo] = self.l4.ports();
        u16::from_be_bytes([hi, lo])
    }

    /// TCP flags byte; zero for anything but decoded TCP.
    #[inline(always)]
    pub fn tcp_flags(&self) -> u8 {
        (self.l4.0 >> 8) as u8
    }

    /// Part of a fragmented datagram (IPv4 MF or offset, IPv6 fragment header).
    #[inline(always)]
    pub fn fragment(&self) -> bool {
        self.ip & FRAGMENT != 0
    }

    /// A non-first fragment: the L4 header is not in this frame, so none was read.
    #[inline(always)]
    pub fn later_fragment(&self) -> bool {
        self.ip & LATER_FRAGMENT != 0
    }

    /// L4 payload bytes (after the TCP/UDP header), from the IP length fields; zero
    /// when the L4 header was not decoded.
    #[inline(always)]
    pub fn payload_len(&self) -> u32 {
        (self.l4.0 >> 48) as u32
    }

    /// Whether the source address is known (a valid IP header was decoded).
    #[inline(always)]
    pub fn has_source(&self) -> bool {
        !matches!(self.family(), Family::None)
    }

    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.class() == Class::Tcp && self.tcp_flags() & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    #[inline(always)]
    pub fn is_syn_ack(&self) -> bool {
        self.class() == Class::Tcp && self.tcp_flags() & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK
    }

    #[inline(always)]
    pub fn is_rst(&self) -> bool {
        self.class() == Class::Tcp && self.tcp_flags() & TCP_RST != 0
    }

    #[inline(always)]
    pub fn is_fin(&self) -> bool {
        self.class() == Class::Tcp && self.tcp_flags() & TCP_FIN != 0
    }
}

#[expect(
    clippy::missing_fields_in_debug,
    reason = "shows the decoded fields, not the packed words they are read from"
)]
impl core::fmt::Debug for PacketInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketInfo")
            .field("class", &self.class())
            .field("family", &self.family())
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("ip_proto", &self.ip_proto())
            .field("src_port", &self.src_port())
            .field("dst_port", &self.dst_port())
            .field("tcp_flags", &self.tcp_flags())
            .field("fragment", &self.fragment())
            .field("later_fragment", &self.later_fragment())
            .field("payload_len", &self.payload_len())
            .finish()
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
    match decode_ip(frame) {
        Ok(info) => info,
        Err(class) => PacketInfo::without_ip(class),
    }
}

/// Decodes a frame with a valid IP header; for any other frame, `Err` holds its class
/// (`NonIp` or `Malformed`), which is all there is to know of it.
///
/// The XDP program counts such frames on a path of their own: when every early return
/// of the decoder meets the full result at one point, LLVM carries each field of the
/// result through all of them, and with BPF's ten registers each return path stores a
/// dozen spilled fields on the way (most of the program's cost, measured).
#[inline(always)]
pub fn decode_ip<F: Frame + ?Sized>(frame: &F) -> Result<PacketInfo, Class> {
    let Some(mut ethertype) = frame.be16_at(ETH_HLEN - 2) else {
        return Err(Class::Malformed);
    };
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        // The tag is TCI (2 bytes) then the inner EtherType.
        let Some(inner) = frame.be16_at(offset + 2) else {
            return Err(Class::Malformed);
        };
        ethertype = inner;
        offset += VLAN_HLEN;
    }
    match ethertype {
        ETHERTYPE_IPV4 => decode_ipv4(frame, offset),
        ETHERTYPE_IPV6 => decode_ipv6(frame, offset),
        _ => Err(Class::NonIp),
    }
}

#[inline(always)]
fn decode_ipv4<F: Frame + ?Sized>(frame: &F, offset: usize) -> Result<PacketInfo, Class> {
    // The fixed header in one read: one bounds check instead of one per field.
    let Some(h) = frame.read::<20>(offset) else {
        return Err(Class::Malformed);
    };
    let version_ihl = h[0];
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if version_ihl >> 4 != 4 || header_len < 20 || total_len < header_len {
        return Err(Class::Malformed);
    }
    if header_len > 20 && !holds(frame, offset + header_len) {
        return Err(Class::Malformed);
    }
    let flags_fragment = u16::from_be_bytes([h[6], h[7]]);
    let more_fragments = flags_fragment & 0x2000 != 0;
    let fragment_offset = flags_fragment & 0x1fff;
    let proto = h[9];
    let mut info = PacketInfo::ip(
        Family::Ipv4,
        Addr::ipv4_mapped([h[12], h[13], h[14], h[15]]),
        Addr::ipv4_mapped([h[16], h[17], h[18], h[19]]),
    );
    if more_fragments || fragment_offset != 0 {
        info.set_fragment();
    }
    if fragment_offset != 0 {
        info.set_later_fragment(proto);
        return Ok(info);
    }
    info.set_ip_proto(proto);
    // A length field claiming more than the frame holds adds nothing: payload is
    // counted only where it is (a forged total length cannot fake a large download).
    let datagram_end = (offset + total_len).min(frame.len());
    info.l4 = decode_l4(frame, offset + header_len, datagram_end, proto);
    Ok(info)
}

#[inline(always)]
fn decode_ipv6<F: Frame + ?Sized>(frame: &F, offset: usize) -> Result<PacketInfo, Class> {
    let Some(h) = frame.read::<40>(offset) else {
        return Err(Class::Malformed);
    };
    if h[0] >> 4 != 6 {
        return Err(Class::Malformed);
    }
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&h[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let mut info = PacketInfo::ip(
        Family::Ipv6,
        Addr([word(8), word(16)]),
        Addr([word(24), word(32)]),
    );
    let datagram_end =
        (offset + 40 + usize::from(u16::from_be_bytes([h[4], h[5]]))).min(frame.len());
    let mut next = h[6];
    let mut offset = offset + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                // Next header, then the length in 8-octet units not counting the first.
                let Some([following, len_units]) = frame.read::<2>(offset) else {
                    return Ok(info);
                };
                next = following;
                offset += (usize::from(len_units) + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some([following, _, off_hi, off_lo]) = frame.read::<4>(offset) else {
                    return Ok(info);
                };
                next = following;
                offset += 8;
                info.set_fragment();
                if u16::from_be_bytes([off_hi, off_lo]) >> 3 != 0 {
                    info.set_later_fragment(next);
                    return Ok(info);
                }
            }
            _ => break,
        }
    }
    if matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT
    ) {
        // Chain longer than the walk: malformed, but with its addresses.
        return Ok(info);
    }
    info.set_ip_proto(next);
    info.l4 = decode_l4(frame, offset, datagram_end, next);
    Ok(info)
}

/// What the L4 header gave, in one word: `Class` (bits 0-7), TCP flags (8-15), the
/// four bytes of the source and destination ports as the header has them (16-47: one
/// load puts them there), payload length (48-63: an IP datagram holds at most 65,535
/// bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
struct L4(u64);

impl L4 {
    /// Class only (no header read, or a bad one).
    #[inline(always)]
    const fn class(class: Class) -> Self {
        Self(class as u64)
    }

    /// A TCP or UDP header; `ports` are its first four bytes.
    #[inline(always)]
    const fn header(class: Class, ports: [u8; 4], tcp_flags: u8, payload_len: usize) -> Self {
        Self(
            class as u64
                | (tcp_flags as u64) << 8
                | (u32::from_ne_bytes(ports) as u64) << 16
                | (payload_len as u64 & 0xffff) << 48,
        )
    }

    #[inline(always)]
    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "by value, the XDP program compiles to other instructions (its stack slots move)"
    )]
    const fn ports(&self) -> [u8; 4] {
        ((self.0 >> 16) as u32).to_ne_bytes()
    }
}

/// `datagram_end`: where the IP datagram ends by its length fields (the frame may be
/// longer, padded, or shorter, cut by a snap length).
#[inline(always)]
fn decode_l4<F: Frame + ?Sized>(frame: &F, offset: usize, datagram_end: usize, proto: u8) -> L4 {
    const MALFORMED: L4 = L4::class(Class::Malformed);
    if offset > MAX_HEADER_OFFSET {
        return MALFORMED;
    }
    match proto {
        IPPROTO_TCP => {
            let Some(t) = frame.read::<20>(offset) else {
                return MALFORMED;
            };
            let header_len = usize::from(t[12] >> 4) * 4;
            if header_len < 20 || (header_len > 20 && !holds(frame, offset + header_len)) {
                return MALFORMED;
            }
            L4::header(
                Class::Tcp,
                [t[0], t[1], t[2], t[3]],
                t[13],
                datagram_end.saturating_sub(offset + header_len),
            )
        }
        IPPROTO_UDP => {
            let Some(u) = frame.read::<8>(offset) else {
                return MALFORMED;
            };
            L4::header(
                Class::Udp,
                [u[0], u[1], u[2], u[3]],
                0,
                datagram_end.saturating_sub(offset + 8),
            )
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            // Type, code, checksum and the 4-byte rest-of-header every message has.
            if frame.read::<8>(offset).is_none() {
                return MALFORMED;
            }
            L4::class(Class::Icmp)
        }
        _ => L4::class(Class::Other),
    }
}

#[cfg(test)]
mod tests;
