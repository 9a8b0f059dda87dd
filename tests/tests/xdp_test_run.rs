//! The compiled XDP program, run by the kernel on crafted frames with
//! `BPF_PROG_TEST_RUN`: return codes and map counters, asserted exactly.
#![cfg(target_os = "linux")]

use std::{net::IpAddr, os::fd::AsFd as _};

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use monitor::backend::xdp::{load_object, load_program, read_global, read_sources};
use monitor_common::{
    GlobalCounters, SourceCounters,
    builder::{L4, Packet},
    decode,
    decode::{
        ETH_HLEN, ETHERTYPE_QINQ, ETHERTYPE_VLAN, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS,
        IPPROTO_ROUTING, MAX_IPV6_EXT_HEADERS, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
    },
    names,
};
use monitor_tests::require_kernel;

const XDP_PASS: u32 = 2;
const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [192, 0, 2, 2];
const C: [u8; 4] = [198, 51, 100, 7];
const HOST: [u8; 4] = [203, 0, 113, 1];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
const HOST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn tcp(flags: u8) -> L4 {
    L4::Tcp {
        src_port: 40_000,
        dst_port: 443,
        flags,
    }
}

fn udp() -> L4 {
    L4::Udp {
        src_port: 5_000,
        dst_port: 53,
    }
}

fn loaded() -> Ebpf {
    let mut ebpf = load_object(1024).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("verifier accepts the program");
    ebpf
}

/// Runs each frame once through the program; every one must pass.
fn run(ebpf: &mut Ebpf, frames: &[Vec<u8>]) {
    let program: &mut Xdp = ebpf
        .program_mut(names::MONITOR_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    for frame in frames {
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })
            .unwrap_or_else(|e| panic!("test_run of a {}-byte frame: {e}", frame.len()));
        assert_eq!(result.return_value, XDP_PASS, "frame {frame:02x?}");
    }
}

fn repeat(frame: Vec<u8>, n: usize) -> Vec<Vec<u8>> {
    vec![frame; n]
}

fn ip4(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

#[test]
fn every_kind_of_frame_is_counted_exactly() {
    require_kernel!();
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(42, 0);
    let frames: Vec<Vec<u8>> = [
        repeat(Packet::ipv4(A, HOST, tcp(TCP_SYN)).build(), 3),
        repeat(Packet::ipv4(B, HOST, tcp(TCP_SYN | TCP_ACK)).build(), 2),
        repeat(Packet::ipv4(B, HOST, tcp(TCP_RST | TCP_ACK)).build(), 1),
        repeat(Packet::ipv4(B, HOST, tcp(TCP_FIN | TCP_ACK)).build(), 1),
        repeat(Packet::ipv4(A, HOST, udp()).payload(10).build(), 4),
        repeat(Packet::ipv4(A, HOST, L4::Echo).payload(56).build(), 5),
        repeat(
            Packet::ipv6(A6, HOST6, udp())
                .ext(IPPROTO_HOPOPTS)
                .ext(IPPROTO_DSTOPTS)
                .build(),
            2,
        ),
        repeat(Packet::ipv6(A6, HOST6, L4::Echo).build(), 1),
        repeat(
            Packet::ipv4(C, HOST, tcp(TCP_SYN))
                .vlan(ETHERTYPE_VLAN)
                .build(),
            1,
        ),
        repeat(
            Packet::ipv6(A6, HOST6, udp())
                .vlan(ETHERTYPE_QINQ)
                .vlan(ETHERTYPE_VLAN)
                .build(),
            1,
        ),
        repeat(
            Packet::ipv4(A, HOST, udp())
                .fragment(0, true)
                .payload(64)
                .build(),
            1,
        ),
        // A later fragment whose payload happens to look like a TCP SYN: not read.
        repeat(
            Packet::ipv4(A, HOST, tcp(TCP_SYN))
                .fragment(100, false)
                .build(),
            1,
        ),
        repeat(Packet::ipv4(A, HOST, L4::Raw(47)).payload(20).build(), 1),
        repeat(arp, 1),
    ]
    .concat();
    let mut ebpf = loaded();
    run(&mut ebpf, &frames);

    let g = read_global(&ebpf).unwrap();
    assert_eq!(g.total.packets, 25);
    assert_eq!(
        g.total.bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(
        (
            g.tcp.packets,
            g.udp.packets,
            g.icmp.packets,
            g.other.packets
        ),
        (9, 8, 6, 1)
    );
    assert_eq!((g.non_ip.packets, g.malformed.packets), (1, 0));
    assert_eq!((g.ipv4.packets, g.ipv6.packets), (20, 4));
    assert_eq!((g.syn, g.syn_ack, g.rst, g.fin), (4, 2, 1, 1));
    assert_eq!(g.fragments, 2);
    assert_eq!(g.icmp.bytes, 5 * (14 + 20 + 8 + 56) + (14 + 40 + 8));

    let s = read_sources(&ebpf).unwrap();
    assert_eq!(s.len(), 4, "{s:?}");
    let counts = |ip: IpAddr| {
        let c: SourceCounters = s[&ip];
        (c.packets, c.syn, c.udp, c.icmp)
    };
    assert_eq!(counts(ip4(A)), (15, 3, 5, 5));
    assert_eq!(counts(ip4(B)), (4, 0, 0, 0));
    assert_eq!(counts(ip4(C)), (1, 1, 0, 0));
    assert_eq!(counts(IpAddr::from(A6)), (4, 0, 3, 1));
    assert_eq!(s[&ip4(C)].bytes, 14 + 4 + 20 + 20);
}

/// Frames cut at every length from the end of the Ethernet header on: each is counted
/// once, as malformed, and nothing is read past the cut (no SYN, no port, no class).
#[test]
fn truncated_and_bad_headers_are_malformed() {
    require_kernel!();
    let whole = [
        Packet::ipv4(A, HOST, tcp(TCP_SYN))
            .vlan(ETHERTYPE_VLAN)
            .build(),
        Packet::ipv4(A, HOST, udp()).ihl(7).build(),
        Packet::ipv6(A6, HOST6, tcp(TCP_SYN))
            .ext(IPPROTO_ROUTING)
            .build(),
        Packet::ipv6(A6, HOST6, L4::Echo).build(),
    ];
    let mut frames: Vec<Vec<u8>> = whole
        .iter()
        .flat_map(|f| (ETH_HLEN..f.len()).map(|len| f[..len].to_vec()))
        .collect();
    for ihl in [0, 3, 4] {
        frames.push(Packet::ipv4(A, HOST, tcp(TCP_SYN)).ihl(ihl).build());
    }
    let mut too_long = Packet::ipv6(A6, HOST6, udp());
    for _ in 0..=MAX_IPV6_EXT_HEADERS {
        too_long = too_long.ext(IPPROTO_DSTOPTS);
    }
    frames.push(too_long.build());

    let mut ebpf = loaded();
    run(&mut ebpf, &frames);
    let g = read_global(&ebpf).unwrap();
    let n = frames.len() as u64;
    assert_eq!(g.total.packets, n);
    assert_eq!(g.malformed.packets, n);
    assert_eq!(
        (
            g.tcp.packets,
            g.udp.packets,
            g.icmp.packets,
            g.other.packets,
            g.non_ip.packets
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(
        (g.syn, g.syn_ack, g.rst, g.fin, g.fragments),
        (0, 0, 0, 0, 0)
    );
}

/// The kernel and the host run the same decoding rules: frame by frame, the counters
/// the program adds equal what `monitor-common` computes for that frame.
#[test]
fn kernel_counts_match_the_shared_decoder_frame_by_frame() {
    require_kernel!();
    let mut frames = vec![
        Packet::ipv4(A, HOST, tcp(TCP_SYN)).ihl(15).build(),
        Packet::ipv4(A, HOST, udp())
            .vlan(ETHERTYPE_QINQ)
            .vlan(ETHERTYPE_VLAN)
            .build(),
        Packet::ipv6(A6, HOST6, tcp(TCP_SYN | TCP_ACK))
            .ext(IPPROTO_HOPOPTS)
            .ext(IPPROTO_ROUTING)
            .fragment(0, true)
            .ext(IPPROTO_DSTOPTS)
            .build(),
        Packet::ipv6(A6, HOST6, udp()).fragment(7, false).build(),
        Packet::ipv4(A, HOST, L4::Echo)
            .vlan(ETHERTYPE_VLAN)
            .vlan(ETHERTYPE_VLAN)
            .vlan(ETHERTYPE_VLAN)
            .build(),
    ];
    let truncated = frames[2][..70].to_vec();
    frames.push(truncated);

    let mut ebpf = loaded();
    let mut expected = GlobalCounters::default();
    for frame in &frames {
        expected.record(&decode(frame.as_slice()), frame.len() as u64);
        run(&mut ebpf, std::slice::from_ref(frame));
        assert_eq!(
            read_global(&ebpf).unwrap(),
            expected,
            "after frame {frame:02x?}"
        );
    }
}

fn settings(blocklist_active: bool, large_flow_bytes: u64) -> monitor_common::counters::Settings {
    monitor_common::counters::Settings {
        scan_epoch: 1,
        blocklist_active: u64::from(blocklist_active),
        blocklist_generation: 1,
        large_flow_bytes,
        ..Default::default()
    }
}

/// The LPM trie in the kernel: packets from a listed prefix are counted as such on
/// their source, packets to a listed address on their destination; others are not.
#[test]
fn blocklisted_sources_and_destinations_are_matched_in_the_kernel() {
    use monitor::{backend::xdp::configure, backend::xdp::read_listed_destinations};

    require_kernel!();
    let list: Vec<monitor::model::cidr::Cidr> =
        ["192.0.2.0/30", "2001:db8::a/128", "198.51.100.7/32"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
    let mut ebpf = loaded();
    configure(&mut ebpf, &list, &settings(true, 0)).unwrap();
    let frames = [
        repeat(Packet::ipv4(A, HOST, tcp(TCP_SYN)).build(), 3), // 192.0.2.1: listed /30
        repeat(Packet::ipv4(C, HOST, udp()).build(), 2),        // 198.51.100.7: listed /32
        repeat(Packet::ipv6(A6, HOST6, udp()).build(), 4),      // 2001:db8::a: listed
        repeat(Packet::ipv4(HOST, [198, 51, 100, 7], udp()).build(), 5), // to a listed address
        repeat(Packet::ipv4([192, 0, 2, 9], HOST, udp()).build(), 6), // outside the /30
    ]
    .concat();
    run(&mut ebpf, &frames);
    let s = read_sources(&ebpf).unwrap();
    let listed = |ip: IpAddr| s[&ip].blocklisted;
    assert_eq!(listed(ip4(A)), 3);
    assert_eq!(listed(ip4(C)), 2);
    assert_eq!(listed(IpAddr::from(A6)), 4);
    assert_eq!(listed(ip4(HOST)), 0);
    assert_eq!(listed(ip4([192, 0, 2, 9])), 0);
    let to = read_listed_destinations(&ebpf).unwrap();
    assert_eq!(to.len(), 1, "{to:?}");
    assert_eq!(to[&ip4(C)].packets, 5);
}

/// The per-source port sketch: a source that SYNs 150 distinct ports is estimated
/// near 150; one that SYNs one port 150 times, at 1.
#[test]
fn the_kernel_sketches_distinct_destination_ports() {
    require_kernel!();
    let mut ebpf = loaded();
    monitor::backend::xdp::configure(&mut ebpf, &[], &settings(false, 0)).unwrap();
    let scanner: Vec<Vec<u8>> = (0..150u16)
        .map(|p| {
            Packet::ipv4(
                A,
                HOST,
                L4::Tcp {
                    src_port: 50_000,
                    dst_port: 1 + p,
                    flags: TCP_SYN,
                },
            )
            .build()
        })
        .collect();
    run(&mut ebpf, &scanner);
    run(
        &mut ebpf,
        &repeat(Packet::ipv4(B, HOST, tcp(TCP_SYN)).build(), 150),
    );
    let s = read_sources(&ebpf).unwrap();
    let (ports, hosts) = s[&ip4(A)].scan_estimate();
    assert!(
        (128..=172).contains(&ports),
        "150 ports estimated as {ports}"
    );
    assert_eq!(hosts, 1);
    assert_eq!(s[&ip4(B)].scan_estimate(), (1, 1));
    assert_eq!(s[&ip4(A)].syn, 150);
}

/// A flow is reported through the ring buffer once, the moment its inbound payload
/// reaches the threshold, with the exact bytes; small packets are not followed.
#[test]
fn a_large_flow_is_reported_once_at_the_threshold() {
    use aya::maps::RingBuf;
    use monitor_common::counters::LargeFlowEvent;

    require_kernel!();
    let mut ebpf = loaded();
    monitor::backend::xdp::configure(&mut ebpf, &[], &settings(false, 10_000)).unwrap();
    let data = L4::Tcp {
        src_port: 80,
        dst_port: 40_000,
        flags: TCP_ACK,
    };
    // 9 x 1,000 bytes: under the threshold; the 10th reaches it; 5 more after.
    run(
        &mut ebpf,
        &repeat(
            Packet::ipv4(C, HOST, data.clone()).payload(1_000).build(),
            9,
        ),
    );
    run(
        &mut ebpf,
        &repeat(Packet::ipv4(C, HOST, tcp(TCP_ACK)).payload(100).build(), 50),
    );
    let mut ring = RingBuf::try_from(ebpf.take_map("LARGE_FLOWS").unwrap()).unwrap();
    assert!(
        ring.next().is_none(),
        "9,000 bytes (and small packets) report nothing"
    );
    run(
        &mut ebpf,
        &repeat(Packet::ipv4(C, HOST, data).payload(1_000).build(), 6),
    );
    let item = ring.next().expect("one event");
    // SAFETY: the program writes a LargeFlowEvent.
    let event: LargeFlowEvent = unsafe { item.as_ptr().cast::<LargeFlowEvent>().read_unaligned() };
    drop(item);
    assert!(ring.next().is_none(), "reported once");
    assert_eq!(event.counters.payload_bytes, 10_000);
    assert_eq!(event.counters.packets, 10);
    assert_eq!(
        (event.key.src_port, event.key.dst_port, event.key.protocol),
        (80, 40_000, 6)
    );
}

/// The egress classifier counts the SYN-ACKs the host sends, per destination, and
/// nothing else; every packet continues (`TCX_NEXT`).
#[test]
fn the_egress_classifier_counts_syn_acks_sent_per_destination() {
    use aya::programs::SchedClassifier;

    require_kernel!();
    let mut ebpf = loaded();
    let program: &mut SchedClassifier = ebpf
        .program_mut(names::EGRESS_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    program.load().expect("verifier accepts the classifier");
    let frames = [
        repeat(Packet::ipv4(HOST, A, tcp(TCP_SYN | TCP_ACK)).build(), 4),
        repeat(Packet::ipv6(HOST6, A6, tcp(TCP_SYN | TCP_ACK)).build(), 2),
        repeat(Packet::ipv4(HOST, B, tcp(TCP_SYN)).build(), 3),
        repeat(Packet::ipv4(HOST, B, tcp(TCP_ACK)).build(), 3),
    ]
    .concat();
    for frame in &frames {
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })
            .unwrap();
        assert_eq!(result.return_value as i32, -1, "TCX_NEXT");
    }
    let sent = monitor::backend::xdp::read_syn_acks_sent(&ebpf).unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[&ip4(A)], 4);
    assert_eq!(sent[&IpAddr::from(A6)], 2);
}

/// What the kernel adds for one frame: the global counters, and per source the
/// packets and bytes (so a misread address shows).
fn kernel_counts(ebpf: &mut Ebpf, frame: &[u8]) -> (GlobalCounters, Vec<(IpAddr, u64, u64)>) {
    run(ebpf, &[frame.to_vec()]);
    let mut sources: Vec<(IpAddr, u64, u64)> = read_sources(ebpf)
        .unwrap()
        .iter()
        .map(|(ip, c)| (ip, c.packets, c.bytes))
        .collect();
    sources.sort();
    (read_global(ebpf).unwrap(), sources)
}

/// Frames cut at every length, bad IPv4 header lengths and IPv6 extension chains at
/// and past the walk limit, one at a time through the compiled program: each frame is
/// counted once, as malformed while a header it needs is cut, as what it is from the
/// end of its L4 header on (its payload counted only as far as the frame goes), and
/// the kernel's counters (global and per source) after each frame are exactly what
/// the host's decoder gives for the frames so far.
#[test]
fn malformed_frames_are_counted_as_the_shared_decoder_says() {
    use monitor_common::{Addr, Class, decode::IPPROTO_FRAGMENT};

    require_kernel!();
    // (frame, class once whole, length of its headers up to the end of L4)
    let layered = |p: Packet, payload: usize, class: Class| {
        let frame = p.payload(payload).build();
        let l4_end = frame.len() - payload;
        (frame, class, l4_end)
    };
    let whole = [
        layered(
            Packet::ipv4(A, HOST, tcp(TCP_SYN))
                .vlan(ETHERTYPE_QINQ)
                .vlan(ETHERTYPE_VLAN),
            16,
            Class::Tcp,
        ),
        layered(
            Packet::ipv6(A6, HOST6, udp())
                .vlan(ETHERTYPE_VLAN)
                .ext(IPPROTO_HOPOPTS)
                .ext(IPPROTO_ROUTING)
                .fragment(0, true)
                .ext(IPPROTO_DSTOPTS),
            10,
            Class::Udp,
        ),
        layered(Packet::ipv4(B, HOST, L4::Echo).ihl(6), 8, Class::Icmp),
        layered(Packet::ipv6(A6, HOST6, L4::Echo), 8, Class::Icmp),
        layered(
            Packet::ipv6(A6, HOST6, tcp(TCP_SYN | TCP_ACK)).ext(IPPROTO_DSTOPTS),
            4,
            Class::Tcp,
        ),
        layered(Packet::ipv4(C, HOST, udp()), 0, Class::Udp),
    ];
    let mut frames: Vec<(Vec<u8>, Class)> = Vec::new();
    for (frame, class, l4_end) in &whole {
        for cut in ETH_HLEN..=frame.len() {
            let expected = if cut < *l4_end {
                Class::Malformed
            } else {
                *class
            };
            frames.push((frame[..cut].to_vec(), expected));
        }
    }

    // IPv4 header lengths: below 5 words, longer than the frame, reaching into the L4
    // header so that it is cut, a total length below the header's, and above the frame's.
    let udp4 = Packet::ipv4(A, HOST, udp()).build(); // 14 + 20 + 8 bytes
    let patched = |at: usize, value: &[u8]| {
        let mut f = udp4.clone();
        f[at..at + value.len()].copy_from_slice(value);
        f
    };
    for ihl in [0u8, 1, 4] {
        frames.push((patched(ETH_HLEN, &[0x40 | ihl]), Class::Malformed));
    }
    frames.push((patched(ETH_HLEN, &[0x4f]), Class::Malformed)); // 60 bytes claimed
    frames.push((patched(ETH_HLEN, &[0x46]), Class::Malformed)); // UDP header cut to 4
    frames.push((patched(ETH_HLEN + 2, &[0, 19]), Class::Malformed)); // total < header
    frames.push((patched(ETH_HLEN + 2, &[0x05, 0xdc]), Class::Udp)); // total 1,500
    frames.push((patched(ETH_HLEN, &[0x65]), Class::Malformed)); // version 6 as IPv4

    // IPv6 extension chains: at the walk limit (decoded), one past it (malformed), a
    // later fragment at the limit (its class from the protocol, no L4 read), and a
    // header whose length points past the frame.
    let chain = |n: usize| {
        (0..n).fold(Packet::ipv6(A6, HOST6, udp()), |p, _| {
            p.ext(IPPROTO_DSTOPTS)
        })
    };
    frames.push((chain(MAX_IPV6_EXT_HEADERS).build(), Class::Udp));
    frames.push((chain(MAX_IPV6_EXT_HEADERS + 1).build(), Class::Malformed));
    frames.push((
        chain(MAX_IPV6_EXT_HEADERS - 1).fragment(5, false).build(),
        Class::Udp,
    ));
    let mut long_ext = Packet::ipv6(A6, HOST6, udp()).ext(IPPROTO_ROUTING).build();
    long_ext[ETH_HLEN + 40 + 1] = 200; // (200 + 1) * 8 bytes: past the frame
    frames.push((long_ext, Class::Malformed));
    assert_eq!(
        IPPROTO_FRAGMENT, 44,
        "the fragment header is built by `fragment`"
    );

    let mut ebpf = loaded();
    let mut expected = GlobalCounters::default();
    let mut expected_sources: std::collections::BTreeMap<IpAddr, (u64, u64)> =
        std::collections::BTreeMap::new();
    for (frame, class) in &frames {
        let info = decode(frame.as_slice());
        assert_eq!(
            info.class(),
            *class,
            "host decoder on {} bytes {frame:02x?}",
            frame.len()
        );
        if *class == Class::Malformed {
            assert!(
                !info.is_syn() && info.payload_len() == 0,
                "nothing read past a cut"
            );
        }
        let len = frame.len() as u64;
        expected.record(&info, len);
        if info.has_source() {
            let ip = std::net::Ipv6Addr::from(info.src.bytes());
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            let entry = expected_sources.entry(ip).or_default();
            entry.0 += 1;
            entry.1 += len;
        } else {
            assert_eq!(info.src, Addr::UNSPECIFIED);
        }
        let (global, sources) = kernel_counts(&mut ebpf, frame);
        assert_eq!(global, expected, "after {} bytes {frame:02x?}", frame.len());
        let expected_list: Vec<(IpAddr, u64, u64)> = expected_sources
            .iter()
            .map(|(ip, (p, b))| (*ip, *p, *b))
            .collect();
        assert_eq!(sources, expected_list, "after {frame:02x?}");
    }
    let malformed = frames
        .iter()
        .filter(|(_, c)| *c == Class::Malformed)
        .count() as u64;
    assert_eq!(expected.total.packets, frames.len() as u64);
    assert_eq!(expected.malformed.packets, malformed);
}

/// Frames shorter than an Ethernet header (none, one byte, thirteen): the kernel does
/// not run an XDP program on them (`BPF_PROG_TEST_RUN` refuses them, as a NIC never
/// delivers them), so nothing is counted; the host decoder calls them malformed.
#[test]
fn frames_shorter_than_ethernet_are_refused_by_the_kernel_and_malformed_on_the_host() {
    use monitor_common::Class;

    require_kernel!();
    let mut ebpf = loaded();
    let program: &mut Xdp = ebpf
        .program_mut(names::MONITOR_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    for len in [0, 1, ETH_HLEN - 1] {
        let frame = vec![0x08u8; len];
        assert_eq!(decode(frame.as_slice()).class(), Class::Malformed);
        let result = program.test_run(TestRunOptions {
            data_in: Some(&frame),
            ..TestRunOptions::new()
        });
        assert!(
            result.is_err(),
            "a {len}-byte frame was run: {:?}",
            result.map(|r| r.return_value)
        );
    }
    let g = read_global(&ebpf).unwrap();
    assert_eq!(g.total.packets, 0);
}

/// Sources enough to overflow the per-CPU cache many times over, each sending its own
/// number of packets in three interleaved rounds: every count goes through the
/// mapped per-source table (`source_table`), and each source's packets and bytes read
/// back exactly, none mixed with another's.
#[test]
fn thousands_of_sources_are_counted_exactly_through_the_table() {
    const SOURCES: u32 = 3_000;

    require_kernel!();
    let mut ebpf = load_object(16_384).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("verifier accepts the program");
    let frame_of = |i: u32| Packet::ipv4((0x0a01_0000 + i).to_be_bytes(), HOST, udp()).build();
    let per_round = |i: u32| (i % 5 + 1) as usize;
    for _round in 0..3 {
        let frames: Vec<Vec<u8>> = (0..SOURCES)
            .flat_map(|i| repeat(frame_of(i), per_round(i)))
            .collect();
        run(&mut ebpf, &frames);
    }
    let sources = read_sources(&ebpf).unwrap();
    assert_eq!(sources.len(), SOURCES as usize);
    for i in 0..SOURCES {
        let counted = sources[&IpAddr::from((0x0a01_0000 + i).to_be_bytes())];
        let packets = 3 * per_round(i) as u64;
        assert_eq!(counted.packets, packets, "source {i}");
        assert_eq!(counted.udp, packets, "source {i}");
        assert_eq!(
            counted.bytes,
            packets * frame_of(i).len() as u64,
            "source {i}"
        );
    }
    let total: u64 = sources.values().map(|c| c.packets).sum();
    assert_eq!(total, read_global(&ebpf).unwrap().total.packets);
}

/// A table smaller than the sources it sees keeps as many as it holds and forgets
/// the rest whole: every source it reports carries exactly its own counts.
#[test]
fn a_full_table_forgets_sources_whole() {
    require_kernel!();
    // On one CPU, so that each source's two packets meet in one cache slot: split
    // over two CPUs' caches, half of a source could be forgotten and half not.
    pin_to_one_cpu();
    // 64 entries: eight sets of eight.
    let mut ebpf = load_object(64).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("verifier accepts the program");
    let frame_of = |i: u32| Packet::ipv4((0x0a02_0000 + i).to_be_bytes(), HOST, udp()).build();
    let frames: Vec<Vec<u8>> = (0..2_000).flat_map(|i| repeat(frame_of(i), 2)).collect();
    run(&mut ebpf, &frames);
    let sources = read_sources(&ebpf).unwrap();
    // The 64 entries, full, plus what the one CPU's 256-slot cache still holds.
    assert!(
        (64..=64 + 256).contains(&sources.len()),
        "{} sources",
        sources.len()
    );
    let len = frame_of(0).len() as u64;
    for (ip, counted) in sources.iter() {
        assert_eq!((counted.packets, counted.bytes), (2, 2 * len), "{ip}");
    }
    assert_eq!(read_global(&ebpf).unwrap().total.packets, 4_000);
}

/// Keeps this test's thread on the CPU it is on.
fn pin_to_one_cpu() {
    // SAFETY: plain libc calls on this thread, with a zeroed set filled by CPU_SET.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(
            cpu >= 0,
            "sched_getcpu: {}",
            std::io::Error::last_os_error()
        );
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        let pinned = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
        assert_eq!(
            pinned,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// While the program runs on another thread, sources taking each other's cache slots
/// all the time (so flushes into the table happen during every read), 1,000 reads
/// succeed, and once the program stops the counts are exact: every run counted once,
/// per source and host-wide. How often a read showed a source behind an earlier read
/// is printed, not asserted: it depends on the machine's load. A flush during a read
/// is caught (the slot's takeover count moved) and its source read again, which took
/// it from 45-335 in 1,000 reads to 0-7 here at quiet moments; a source that takes a
/// slot and loses it again within one read, as every source of this test does under
/// load, is still missed for that read (51 in a CI run).
#[test]
fn reads_under_a_running_program_lose_nothing_once_it_stops() {
    require_kernel!();
    let mut ebpf = load_object(16_384).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("verifier accepts the program");
    let program: &mut Xdp = ebpf
        .program_mut(names::MONITOR_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    let program_fd = program
        .fd()
        .unwrap()
        .as_fd()
        .try_clone_to_owned()
        .expect("duplicate the program's fd");
    let frames: Vec<Vec<u8>> = (0..600u32)
        .map(|i| Packet::ipv4((0x0a03_0000 + i).to_be_bytes(), HOST, udp()).build())
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for frame in &frames {
                    test_run_raw(&program_fd, frame);
                    runs += 1;
                }
            }
            runs
        })
    };
    let mut last: std::collections::HashMap<IpAddr, u64> = std::collections::HashMap::new();
    let mut backwards = Vec::new();
    for _ in 0..1_000 {
        for (ip, counted) in read_sources(&ebpf).unwrap().iter() {
            let before = last.insert(ip, counted.packets).unwrap_or(0);
            if counted.packets < before {
                backwards.push((ip, before, counted.packets));
            }
        }
    }
    eprintln!(
        "{} of the reads' sources were behind an earlier read (by at most {} packets)",
        backwards.len(),
        backwards
            .iter()
            .map(|(_, before, now)| before - now)
            .max()
            .unwrap_or(0)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = runner.join().unwrap();
    // Every run counted, once.
    let total: u64 = read_sources(&ebpf)
        .unwrap()
        .values()
        .map(|c| c.packets)
        .sum();
    assert_eq!(total, runs);
    assert_eq!(read_global(&ebpf).unwrap().total.packets, runs);
}

/// One `BPF_PROG_TEST_RUN` of `frame`, by hand: aya's `test_run` needs the program
/// borrowed from the `Ebpf`, which the reading thread holds.
fn test_run_raw(program: &std::os::fd::OwnedFd, frame: &[u8]) {
    use std::os::fd::AsRawFd as _;
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        // Explicit: the kernel refuses non-zero bytes past the last field it knows.
        _pad: u32,
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestAttr {
        prog_fd: program.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: 1,
        ..TestAttr::default()
    };
    // SAFETY: `attr` points at the frame, which outlives the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &raw mut attr,
            size_of::<TestAttr>(),
        )
    };
    assert_eq!(result, 0, "test run: {}", std::io::Error::last_os_error());
    assert_eq!(attr.retval, XDP_PASS);
}
