//! Builds Ethernet frames for tests and benchmarks: the decoder's unit tests, the
//! `BPF_PROG_TEST_RUN` tests of the compiled program and the traffic generators use
//! the same frames.

use std::vec::Vec;

use crate::decode::{
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_FRAGMENT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP,
};

pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// ICMP echo request (ICMPv6 echo request under IPv6).
    Echo,
    /// Any other protocol: just the number, no header.
    Raw(u8),
}

#[derive(Clone, Debug)]
enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        /// Header length in 32-bit words (5 without options).
        ihl: u8,
        /// Fragment offset in 8-byte units, and the more-fragments flag.
        fragment: (u16, bool),
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        /// Extension headers in order: (protocol number, fragment offset for 44).
        ext: Vec<(u8, u16)>,
    },
}

/// One frame to build.
#[derive(Clone, Debug)]
pub struct Packet {
    vlan_tpids: Vec<u16>,
    ip: Ip,
    l4: L4,
    payload: usize,
}

impl Packet {
    pub fn ipv4(src: [u8; 4], dst: [u8; 4], l4: L4) -> Self {
        Self {
            vlan_tpids: Vec::new(),
            ip: Ip::V4 {
                src,
                dst,
                ihl: 5,
                fragment: (0, false),
            },
            l4,
            payload: 0,
        }
    }

    pub fn ipv6(src: [u8; 16], dst: [u8; 16], l4: L4) -> Self {
        Self {
            vlan_tpids: Vec::new(),
            ip: Ip::V6 {
                src,
                dst,
                ext: Vec::new(),
            },
            l4,
            payload: 0,
        }
    }

    /// Adds a VLAN tag (outermost first): 0x8100 for 802.1Q, 0x88a8 for 802.1ad.
    #[must_use]
    pub fn vlan(mut self, tpid: u16) -> Self {
        self.vlan_tpids.push(tpid);
        self
    }

    /// IPv4 header length in 32-bit words; options are zero-filled.
    #[must_use]
    pub fn ihl(mut self, words: u8) -> Self {
        if let Ip::V4 { ihl, .. } = &mut self.ip {
            *ihl = words;
        }
        self
    }

    /// IPv4 fragment: offset in 8-byte units and the more-fragments flag.
    #[must_use]
    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        match &mut self.ip {
            Ip::V4 { fragment, .. } => *fragment = (offset, more),
            Ip::V6 { ext, .. } => ext.push((IPPROTO_FRAGMENT, offset)),
        }
        self
    }

    /// Adds an IPv6 extension header (hop-by-hop 0, routing 43, destination options 60,
    /// fragment 44 with offset 0).
    #[must_use]
    pub fn ext(mut self, proto: u8) -> Self {
        if let Ip::V6 { ext, .. } = &mut self.ip {
            ext.push((proto, 0));
        }
        self
    }

    /// Bytes of zero payload after the L4 header.
    #[must_use]
    pub fn payload(mut self, len: usize) -> Self {
        self.payload = len;
        self
    }

    fn l4_bytes(&self, v6: bool) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        let proto = match self.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                flags,
            } => {
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(&1u32.to_be_bytes()); // seq
                out.extend_from_slice(&0u32.to_be_bytes()); // ack
                out.push(5 << 4); // data offset
                out.push(flags);
                out.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urg
                IPPROTO_TCP
            }
            L4::Udp { src_port, dst_port } => {
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                let len = (8 + self.payload) as u16;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                IPPROTO_UDP
            }
            L4::Echo => {
                out.extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1]);
                if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP }
            }
            L4::Raw(proto) => proto,
        };
        out.resize(out.len() + self.payload, 0);
        (proto, out)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&DST_MAC);
        f.extend_from_slice(&SRC_MAC);
        for (i, tpid) in self.vlan_tpids.iter().enumerate() {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(100 + i as u16).to_be_bytes()); // VLAN id
        }
        match &self.ip {
            Ip::V4 {
                src,
                dst,
                ihl,
                fragment,
            } => {
                let (proto, l4) = self.l4_bytes(false);
                let header_len = usize::from(*ihl) * 4;
                let total = (header_len.max(20) + l4.len()) as u16;
                f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let start = f.len();
                f.push(0x40 | (ihl & 0x0f));
                f.push(0);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&0x1234u16.to_be_bytes());
                let frag = (fragment.0 & 0x1fff) | if fragment.1 { 0x2000 } else { 0 };
                f.extend_from_slice(&frag.to_be_bytes());
                f.push(64);
                f.push(proto);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
                f.resize(start + header_len.max(20), 0);
                let sum = checksum(&f[start..start + header_len.max(20)]);
                f[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
                f.extend_from_slice(&l4);
            }
            Ip::V6 { src, dst, ext } => {
                let (proto, l4) = self.l4_bytes(true);
                let mut chain = Vec::new();
                for (i, (kind, frag_offset)) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(proto, |e| e.0);
                    if *kind == IPPROTO_FRAGMENT {
                        chain.extend_from_slice(&[next, 0]);
                        chain.extend_from_slice(&(frag_offset << 3).to_be_bytes());
                        chain.extend_from_slice(&[0, 0, 0, 1]);
                    } else {
                        chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // PadN
                    }
                }
                let first = ext.first().map_or(proto, |e| e.0);
                f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
                f.push(first);
                f.push(64);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
                f.extend_from_slice(&chain);
                f.extend_from_slice(&l4);
            }
        }
        f
    }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
