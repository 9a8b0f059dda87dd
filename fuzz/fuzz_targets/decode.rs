//! The shared packet decoder on arbitrary bytes: it must not panic, and what it says
//! of a frame must be consistent with the frame (nothing read past its end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_common::{
    Addr, Class, Family, GlobalCounters, decode,
    decode::{ETH_HLEN, VLAN_HLEN},
};

fuzz_target!(|frame: &[u8]| {
    let info = decode(frame);
    assert_eq!(info, decode(frame), "decoding is deterministic");

    // Without a valid IP header only the class is known.
    match info.family() {
        Family::None => {
            assert!(
                matches!(info.class(), Class::NonIp | Class::Malformed),
                "{info:?}"
            );
            assert_eq!((info.src, info.dst), (Addr::UNSPECIFIED, Addr::UNSPECIFIED));
            assert_eq!(info.payload_len(), 0);
        }
        Family::Ipv4 => {
            assert!(frame.len() >= ETH_HLEN + 20, "{info:?}");
            // IPv4-mapped: ::ffff:a.b.c.d
            assert_eq!(
                &info.src.bytes()[..12],
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
            );
            assert_eq!(
                &info.dst.bytes()[..12],
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
            );
        }
        Family::Ipv6 => assert!(frame.len() >= ETH_HLEN + 40, "{info:?}"),
    }
    if frame.len() < ETH_HLEN {
        assert_eq!(info.class(), Class::Malformed);
    }

    // The payload is counted only where it is: after at least Ethernet, IP and an
    // 8-byte L4 header, within the frame.
    let payload = info.payload_len() as usize;
    if payload > 0 {
        assert!(matches!(info.class(), Class::Tcp | Class::Udp), "{info:?}");
        let min_ip = if info.family() == Family::Ipv4 {
            20
        } else {
            40
        };
        assert!(
            ETH_HLEN + min_ip + 8 + payload <= frame.len(),
            "payload {payload} in a {}-byte frame: {info:?}",
            frame.len()
        );
    }
    if matches!(info.class(), Class::Tcp | Class::Udp) && !info.later_fragment() {
        // The L4 header was read, so it is in the frame: after Ethernet (and at most
        // two VLAN tags) and a minimal IP header.
        assert!(frame.len() >= ETH_HLEN + 20 + 8, "{info:?}");
        assert!(frame.len() <= usize::MAX - 2 * VLAN_HLEN);
    }
    if info.later_fragment() {
        assert!(info.fragment(), "{info:?}");
        assert_eq!(info.payload_len(), 0);
        assert_eq!(
            (info.src_port(), info.dst_port(), info.tcp_flags()),
            (0, 0, 0)
        );
    }
    if info.is_syn() || info.is_syn_ack() || info.is_rst() || info.is_fin() {
        assert_eq!(info.class(), Class::Tcp);
    }
    if info.class() != Class::Tcp {
        assert_eq!(info.tcp_flags(), 0, "{info:?}");
    }

    // Counting it keeps the totals consistent: every frame in exactly one class.
    let mut counters = GlobalCounters::default();
    counters.record(&info, frame.len() as u64);
    let classes = [
        counters.tcp.packets,
        counters.udp.packets,
        counters.icmp.packets,
        counters.other.packets,
        counters.non_ip.packets,
        counters.malformed.packets,
    ];
    assert_eq!(classes.iter().sum::<u64>(), 1);
    assert_eq!(counters.total.packets, 1);
    assert_eq!(counters.total.bytes, frame.len() as u64);
});
