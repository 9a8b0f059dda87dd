use std::vec::Vec;

use super::*;
use crate::builder::{L4, Packet};
use crate::counters::GlobalCounters;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn syn() -> L4 {
    L4::Tcp {
        src_port: 40000,
        dst_port: 80,
        flags: TCP_SYN,
    }
}

fn udp() -> L4 {
    L4::Udp {
        src_port: 5353,
        dst_port: 53,
    }
}

fn decoded(p: &Packet) -> PacketInfo {
    decode(p.build().as_slice())
}

#[test]
fn ipv4_tcp_syn() {
    let info = decoded(&Packet::ipv4(A, B, syn()));
    assert_eq!(info.class(), Class::Tcp);
    assert_eq!(info.family(), Family::Ipv4);
    assert_eq!(info.src, Addr::ipv4_mapped(A));
    assert_eq!(info.dst, Addr::ipv4_mapped(B));
    assert_eq!((info.src_port(), info.dst_port()), (40000, 80));
    assert!(info.is_syn());
    assert!(!info.is_syn_ack());
    assert!(!info.fragment());
}

#[test]
fn syn_ack_rst_fin_are_told_apart() {
    let with = |flags| {
        decoded(&Packet::ipv4(
            A,
            B,
            L4::Tcp {
                src_port: 1,
                dst_port: 2,
                flags,
            },
        ))
    };
    let sa = with(TCP_SYN | TCP_ACK);
    assert!(sa.is_syn_ack() && !sa.is_syn());
    assert!(with(TCP_RST | TCP_ACK).is_rst());
    assert!(with(TCP_FIN | TCP_ACK).is_fin());
    let ack = with(TCP_ACK);
    assert!(!ack.is_syn() && !ack.is_syn_ack() && !ack.is_rst() && !ack.is_fin());
}

#[test]
fn ipv4_udp_and_icmp() {
    let u = decoded(&Packet::ipv4(A, B, udp()));
    assert_eq!(u.class(), Class::Udp);
    assert_eq!((u.src_port(), u.dst_port()), (5353, 53));
    let i = decoded(&Packet::ipv4(A, B, L4::Echo));
    assert_eq!(i.class(), Class::Icmp);
    assert_eq!(i.ip_proto(), IPPROTO_ICMP);
    let gre = decoded(&Packet::ipv4(A, B, L4::Raw(47)));
    assert_eq!(gre.class(), Class::Other);
    assert_eq!(gre.ip_proto(), 47);
}

#[test]
fn ipv4_options_move_the_l4_header() {
    let info = decoded(&Packet::ipv4(A, B, syn()).ihl(8));
    assert_eq!(info.class(), Class::Tcp);
    assert_eq!((info.src_port(), info.dst_port()), (40000, 80));
}

#[test]
fn ipv4_bad_ihl_or_version_is_malformed() {
    for ihl in 0..5 {
        let info = decoded(&Packet::ipv4(A, B, syn()).ihl(ihl));
        assert_eq!(info.class(), Class::Malformed, "ihl {ihl}");
        assert_eq!(info.family(), Family::None);
    }
    let mut frame = Packet::ipv4(A, B, syn()).build();
    frame[14] = 0x55; // version 5
    assert_eq!(decode(frame.as_slice()).class(), Class::Malformed);
    // IHL pointing past the end of the frame.
    let mut frame = Packet::ipv4(A, B, L4::Raw(47)).build();
    frame[14] = 0x4f;
    assert_eq!(decode(frame.as_slice()).class(), Class::Malformed);
}

#[test]
fn ipv4_fragments() {
    let first = decoded(&Packet::ipv4(A, B, udp()).fragment(0, true));
    assert_eq!(first.class(), Class::Udp);
    assert!(first.fragment() && !first.later_fragment());
    assert_eq!(first.dst_port(), 53);

    // A later fragment carries no L4 header: its bytes must not be read as one.
    let later = decoded(&Packet::ipv4(A, B, syn()).fragment(185, false));
    assert_eq!(later.class(), Class::Tcp);
    assert!(later.fragment() && later.later_fragment());
    assert_eq!(
        (later.src_port(), later.dst_port(), later.tcp_flags()),
        (0, 0, 0)
    );
    assert!(!later.is_syn());
}

#[test]
fn ipv6_udp_and_icmpv6() {
    let u = decoded(&Packet::ipv6(A6, B6, udp()));
    assert_eq!(u.class(), Class::Udp);
    assert_eq!(u.family(), Family::Ipv6);
    assert_eq!(u.src, Addr::from_bytes(A6));
    assert_eq!(u.dst, Addr::from_bytes(B6));
    assert_eq!(u.dst_port(), 53);
    let i = decoded(&Packet::ipv6(A6, B6, L4::Echo));
    assert_eq!(i.class(), Class::Icmp);
    assert_eq!(i.ip_proto(), IPPROTO_ICMPV6);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let p = Packet::ipv6(A6, B6, syn())
        .ext(IPPROTO_HOPOPTS)
        .ext(IPPROTO_ROUTING)
        .ext(IPPROTO_FRAGMENT)
        .ext(IPPROTO_DSTOPTS);
    let info = decoded(&p);
    assert_eq!(info.class(), Class::Tcp);
    assert!(info.is_syn());
    assert!(info.fragment() && !info.later_fragment());
    assert_eq!(info.dst_port(), 80);
}

#[test]
fn ipv6_later_fragment_has_no_l4() {
    let info = decoded(&Packet::ipv6(A6, B6, udp()).fragment(100, false));
    assert_eq!(info.class(), Class::Udp);
    assert!(info.later_fragment());
    assert_eq!(info.dst_port(), 0);
}

#[test]
fn ipv6_chain_past_the_walk_limit_is_malformed() {
    let mut p = Packet::ipv6(A6, B6, udp());
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        p = p.ext(IPPROTO_DSTOPTS);
    }
    assert_eq!(
        decoded(&p).class(),
        Class::Udp,
        "exactly the limit is walked"
    );
    let info = decoded(&p.ext(IPPROTO_DSTOPTS));
    assert_eq!(info.class(), Class::Malformed);
    assert_eq!(info.family(), Family::Ipv6, "the source is still known");
    assert_eq!(info.src, Addr::from_bytes(A6));
}

#[test]
fn vlan_tags() {
    let one = decoded(&Packet::ipv4(A, B, syn()).vlan(ETHERTYPE_VLAN));
    assert!(one.is_syn());
    let two = decoded(
        &Packet::ipv6(A6, B6, udp())
            .vlan(ETHERTYPE_QINQ)
            .vlan(ETHERTYPE_VLAN),
    );
    assert_eq!(two.class(), Class::Udp);
    assert_eq!(two.dst_port(), 53);
    let three = decoded(
        &Packet::ipv4(A, B, syn())
            .vlan(ETHERTYPE_QINQ)
            .vlan(ETHERTYPE_VLAN)
            .vlan(ETHERTYPE_VLAN),
    );
    assert_eq!(three.class(), Class::NonIp);
}

#[test]
fn non_ip_and_empty_frames() {
    let mut arp = Vec::from([0xffu8; 12]);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(42, 0);
    assert_eq!(decode(arp.as_slice()).class(), Class::NonIp);
    assert_eq!(decode(&[][..]).class(), Class::Malformed);
    assert_eq!(decode(&arp[..13]).class(), Class::Malformed);
}

#[test]
fn every_truncation_is_malformed_and_never_misread() {
    let frames = [
        Packet::ipv4(A, B, syn()).vlan(ETHERTYPE_VLAN).build(),
        Packet::ipv4(A, B, udp()).ihl(6).build(),
        Packet::ipv4(A, B, L4::Echo).build(),
        Packet::ipv6(A6, B6, syn()).ext(IPPROTO_HOPOPTS).build(),
        Packet::ipv6(A6, B6, L4::Echo).build(),
    ];
    for frame in &frames {
        let whole = decode(frame.as_slice());
        assert_ne!(whole.class(), Class::Malformed);
        for len in 0..frame.len() {
            let info = decode(&frame[..len]);
            assert_eq!(info.class(), Class::Malformed, "prefix of {len} bytes");
            assert_eq!(info.src_port(), 0);
            assert_eq!(info.tcp_flags(), 0);
        }
    }
}

#[test]
fn class_counters_add_up_to_the_total() {
    let frames = [
        Packet::ipv4(A, B, syn()).build(),
        Packet::ipv4(A, B, udp()).payload(100).build(),
        Packet::ipv6(A6, B6, L4::Echo).build(),
        Packet::ipv4(A, B, L4::Raw(47)).build(),
        Packet::ipv4(A, B, syn()).ihl(3).build(),
        Vec::from([0u8; 20]),
    ];
    let mut c = GlobalCounters::default();
    for f in &frames {
        c.record(&decode(f.as_slice()), f.len() as u64);
    }
    let classes = [c.tcp, c.udp, c.icmp, c.other, c.non_ip, c.malformed];
    assert_eq!(classes.iter().map(|t| t.packets).sum::<u64>(), 6);
    assert_eq!(classes.iter().map(|t| t.bytes).sum::<u64>(), c.total.bytes);
    assert_eq!(c.total.packets, 6);
    assert_eq!((c.ipv4.packets, c.ipv6.packets), (3, 1));
    assert_eq!((c.syn, c.malformed.packets, c.non_ip.packets), (1, 1, 1));
}

#[test]
fn payload_length_comes_from_the_ip_lengths() {
    let u = decoded(&Packet::ipv4(A, B, udp()).payload(300));
    assert_eq!(u.payload_len(), 300);
    let t = decoded(
        &Packet::ipv6(A6, B6, syn())
            .ext(IPPROTO_HOPOPTS)
            .payload(1200),
    );
    assert_eq!(t.payload_len(), 1200);
    // Ethernet padding after the datagram is not payload.
    let mut padded = Packet::ipv4(A, B, syn()).build();
    padded.resize(padded.len() + 6, 0);
    assert_eq!(decode(padded.as_slice()).payload_len(), 0);
    assert_eq!(
        decoded(&Packet::ipv4(A, B, L4::Echo).payload(56)).payload_len(),
        0
    );
}

#[test]
fn the_largest_datagrams_keep_their_payload_length() {
    // 65,535 bytes of IPv4, and of IPv6 payload: the L4 result packs the length in
    // 16 bits.
    let u = decoded(&Packet::ipv4(A, B, udp()).payload(65_535 - 20 - 8));
    assert_eq!(u.payload_len(), 65_507);
    let t = decoded(&Packet::ipv6(A6, B6, syn()).payload(65_535 - 20));
    assert_eq!(t.payload_len(), 65_515);
    assert_eq!(
        (t.src_port(), t.dst_port(), t.tcp_flags()),
        (40000, 80, TCP_SYN)
    );
}

#[test]
fn frames_without_ip_leave_through_err() {
    let mut arp = Vec::from([0xffu8; 12]);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(42, 0);
    assert_eq!(decode_ip(arp.as_slice()), Err(Class::NonIp));
    let frame = Packet::ipv4(A, B, syn()).build();
    assert_eq!(decode_ip(&frame[..30]), Err(Class::Malformed));
    assert_eq!(
        decode_ip(Packet::ipv4(A, B, syn()).ihl(4).build().as_slice()),
        Err(Class::Malformed)
    );
    // Past a valid IP header the source is known, whatever follows.
    let cut = decode_ip(&frame[..frame.len() - 1]).expect("the IP header is whole");
    assert_eq!(
        (cut.class(), cut.family()),
        (Class::Malformed, Family::Ipv4)
    );
    assert_eq!(cut.src, Addr::ipv4_mapped(A));
    // `decode` is `decode_ip` with the class alone for the rest.
    for f in [arp.as_slice(), &frame[..30], frame.as_slice()] {
        let expected = decode_ip(f).unwrap_or_else(PacketInfo::without_ip);
        assert_eq!(decode(f), expected);
    }
}

#[test]
fn a_forged_length_claims_no_payload_the_frame_lacks() {
    let mut frame = Packet::ipv4(A, B, udp()).payload(100).build();
    frame[16..18].copy_from_slice(&65_535u16.to_be_bytes()); // IPv4 total length
    let info = decode(frame.as_slice());
    assert_eq!(info.class(), Class::Udp);
    assert_eq!(info.payload_len(), 100);
    let mut frame6 = Packet::ipv6(A6, B6, udp()).payload(100).build();
    frame6[18..20].copy_from_slice(&65_535u16.to_be_bytes()); // IPv6 payload length
    assert_eq!(decode(frame6.as_slice()).payload_len(), 100);
}
