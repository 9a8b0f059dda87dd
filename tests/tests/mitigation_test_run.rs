//! Mitigation in the compiled XDP program, run by the kernel on crafted frames with
//! `BPF_PROG_TEST_RUN`: blocklisted and banned sources are dropped (`XDP_DROP`) or, in
//! dry-run, passed, and counted exactly, per source and in total; a packet filter
//! (`--filter`) narrows what is counted, never what is dropped.
#![cfg(target_os = "linux")]

use std::net::IpAddr;

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use monitor::{
    backend::xdp::{
        configure, exempt_from_blocklist, load_object, load_program, read_dropped, read_global,
        read_sources, set_ban,
    },
    model::cidr::Cidr,
};
use monitor_common::{
    Class,
    builder::{L4, Packet},
    counters::{BanEntry, MITIGATION_DROP, MITIGATION_DRY_RUN, MITIGATION_OFF, Settings, Tally},
    names,
    view::{PacketFilter, TERM_CLASS, VIEW_FILTER},
};
use monitor_tests::require_kernel;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const LISTED: [u8; 4] = [192, 0, 2, 1];
const LISTED_TOO: [u8; 4] = [192, 0, 2, 2];
const OTHER: [u8; 4] = [198, 51, 100, 7];
const HOST: [u8; 4] = [203, 0, 113, 1];

fn frame(src: [u8; 4]) -> Vec<u8> {
    Packet::ipv4(
        src,
        HOST,
        L4::Udp {
            src_port: 5_000,
            dst_port: 53,
        },
    )
    .payload(100)
    .build()
}

/// A TCP SYN from `src`: what the filter of [`filtered`] lets through.
fn tcp_frame(src: [u8; 4]) -> Vec<u8> {
    Packet::ipv4(
        src,
        HOST,
        L4::Tcp {
            src_port: 5_000,
            dst_port: 443,
            flags: 0x02,
        },
    )
    .build()
}

/// `settings` with the filter `tcp` set, which refuses [`frame`]'s UDP packets.
fn filtered(settings: Settings) -> Settings {
    Settings {
        packet_view: VIEW_FILTER,
        filter: PacketFilter {
            terms: TERM_CLASS,
            class: Class::Tcp as u8,
            ..Default::default()
        },
        ..settings
    }
}

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

fn settings(mitigation: u64, blocklist: bool, bans: u64) -> Settings {
    Settings {
        scan_epoch: 1,
        blocklist_active: u64::from(blocklist),
        blocklist_generation: 1,
        mitigation,
        bans,
        ..Default::default()
    }
}

fn loaded(blocklist: &[Cidr], settings: &Settings) -> Ebpf {
    let mut ebpf = load_object(1024).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("verifier accepts the program");
    configure(&mut ebpf, blocklist, settings).unwrap();
    ebpf
}

/// Runs `frame` `n` times; each must return `expected`.
fn run(ebpf: &mut Ebpf, frame: &[u8], n: usize, expected: u32) {
    let program: &mut Xdp = ebpf
        .program_mut(names::MONITOR_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    for _ in 0..n {
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })
            .unwrap();
        assert_eq!(result.return_value, expected, "frame {frame:02x?}");
    }
}

/// What a filter-refused run leaves: `dropped` exactly (per source, and their sum
/// host-wide), and no traffic counted, host-wide or per source.
fn assert_only_dropped(ebpf: &Ebpf, dropped: &[(IpAddr, Tally)]) {
    let global = read_global(ebpf).unwrap();
    let sum = dropped
        .iter()
        .fold(Tally::default(), |sum, (_, t)| sum.merged(*t));
    assert_eq!(global.dropped, sum);
    assert_eq!(
        global.total,
        Tally::default(),
        "refused packets are not counted"
    );
    let read = read_dropped(ebpf).unwrap();
    assert_eq!(read, dropped.iter().copied().collect(), "{read:?}");
    assert!(read_sources(ebpf).unwrap().is_empty());
}

fn tally(packets: u64, frame: &[u8]) -> Tally {
    Tally {
        packets,
        bytes: packets * frame.len() as u64,
    }
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

#[test]
fn blocklisted_sources_are_dropped_and_counted_exactly() {
    require_kernel!();
    let mut ebpf = loaded(
        &cidrs(&["192.0.2.0/30"]),
        &settings(MITIGATION_DROP, true, 0),
    );
    let (listed, other) = (frame(LISTED), frame(OTHER));
    run(&mut ebpf, &listed, 7, XDP_DROP);
    run(&mut ebpf, &other, 5, XDP_PASS);
    run(&mut ebpf, &frame(LISTED_TOO), 2, XDP_DROP);
    let global = read_global(&ebpf).unwrap();
    assert_eq!(global.dropped, tally(9, &listed));
    assert_eq!(global.total.packets, 14, "dropped frames are still counted");
    let dropped = read_dropped(&ebpf).unwrap();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert_eq!(dropped[&ip(LISTED)], tally(7, &listed));
    assert_eq!(dropped[&ip(LISTED_TOO)], tally(2, &listed));
    // Detection still sees the dropped source's traffic.
    let sources = read_sources(&ebpf).unwrap();
    assert_eq!(sources[&ip(LISTED)].packets, 7);
    assert_eq!(sources[&ip(LISTED)].blocklisted, 7);
}

#[test]
fn dry_run_passes_everything_and_counts_what_it_would_drop() {
    require_kernel!();
    let mut ebpf = loaded(
        &cidrs(&["192.0.2.1"]),
        &settings(MITIGATION_DRY_RUN, true, 0),
    );
    let listed = frame(LISTED);
    run(&mut ebpf, &listed, 4, XDP_PASS);
    run(&mut ebpf, &frame(OTHER), 3, XDP_PASS);
    assert_eq!(read_global(&ebpf).unwrap().dropped, tally(4, &listed));
    let dropped = read_dropped(&ebpf).unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[&ip(LISTED)], tally(4, &listed));
}

#[test]
fn off_drops_and_counts_nothing() {
    require_kernel!();
    let mut ebpf = loaded(&cidrs(&["192.0.2.1"]), &settings(MITIGATION_OFF, true, 0));
    run(&mut ebpf, &frame(LISTED), 4, XDP_PASS);
    assert_eq!(read_global(&ebpf).unwrap().dropped, Tally::default());
    assert!(read_dropped(&ebpf).unwrap().is_empty());
    assert_eq!(read_sources(&ebpf).unwrap()[&ip(LISTED)].blocklisted, 4);
}

#[test]
fn banned_sources_are_dropped_until_unbanned() {
    require_kernel!();
    let mut ebpf = loaded(&[], &settings(MITIGATION_DROP, false, 0));
    let (banned, other) = (frame(OTHER), frame(LISTED));
    run(&mut ebpf, &banned, 2, XDP_PASS);
    let bans = set_ban(&mut ebpf, ip(OTHER), Some(BanEntry::default())).unwrap();
    assert_eq!(bans, 1);
    // The ban count in the settings is what turns the lookup on.
    run(&mut ebpf, &banned, 1, XDP_PASS);
    configure(&mut ebpf, &[], &settings(MITIGATION_DROP, false, bans)).unwrap();
    run(&mut ebpf, &banned, 6, XDP_DROP);
    run(&mut ebpf, &other, 3, XDP_PASS);
    assert_eq!(set_ban(&mut ebpf, ip(OTHER), None).unwrap(), 0);
    run(&mut ebpf, &banned, 5, XDP_PASS);
    assert_eq!(read_global(&ebpf).unwrap().dropped, tally(6, &banned));
    assert_eq!(read_dropped(&ebpf).unwrap()[&ip(OTHER)], tally(6, &banned));
    assert_eq!(read_sources(&ebpf).unwrap()[&ip(OTHER)].packets, 14);
}

#[test]
fn the_allowlist_wins_over_the_blocklist_in_the_kernel() {
    require_kernel!();
    // An allowlisted address inside a blocklisted network, and a blocklisted address
    // inside an allowlisted network.
    let blocklist = cidrs(&["192.0.2.0/24", "198.51.100.7"]);
    let mut ebpf = loaded(&blocklist, &settings(MITIGATION_DROP, true, 0));
    exempt_from_blocklist(
        &mut ebpf,
        &blocklist,
        &cidrs(&["192.0.2.1", "198.51.100.0/24"]),
    )
    .unwrap();
    run(&mut ebpf, &frame(LISTED), 3, XDP_PASS);
    run(&mut ebpf, &frame(OTHER), 3, XDP_PASS);
    run(&mut ebpf, &frame(LISTED_TOO), 2, XDP_DROP);
    let dropped = read_dropped(&ebpf).unwrap();
    assert_eq!(dropped.keys().collect::<Vec<_>>(), [&ip(LISTED_TOO)]);
}

#[test]
fn a_filter_does_not_shield_blocklisted_sources() {
    require_kernel!();
    let mut ebpf = loaded(
        &cidrs(&["192.0.2.0/30"]),
        &filtered(settings(MITIGATION_DROP, true, 0)),
    );
    // UDP: refused by the filter, dropped all the same when the source is listed.
    let (listed, other) = (frame(LISTED), frame(OTHER));
    run(&mut ebpf, &listed, 7, XDP_DROP);
    run(&mut ebpf, &other, 5, XDP_PASS);
    run(&mut ebpf, &frame(LISTED_TOO), 2, XDP_DROP);
    assert_only_dropped(
        &ebpf,
        &[
            (ip(LISTED), tally(7, &listed)),
            (ip(LISTED_TOO), tally(2, &listed)),
        ],
    );
    // TCP from the same source: matches the filter, counted, then dropped.
    let syn = tcp_frame(LISTED);
    run(&mut ebpf, &syn, 3, XDP_DROP);
    let global = read_global(&ebpf).unwrap();
    assert_eq!(global.total, tally(3, &syn));
    assert_eq!(global.dropped.packets, 12);
    assert_eq!(
        global.dropped.bytes,
        tally(9, &listed).bytes + tally(3, &syn).bytes
    );
    let sources = read_sources(&ebpf).unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[&ip(LISTED)].packets, 3);
    assert_eq!(sources[&ip(LISTED)].blocklisted, 3);
    assert_eq!(read_dropped(&ebpf).unwrap()[&ip(LISTED)].packets, 10);
}

#[test]
fn a_filter_does_not_shield_banned_sources() {
    require_kernel!();
    let mut ebpf = loaded(&[], &filtered(settings(MITIGATION_DROP, false, 0)));
    let (banned, other) = (frame(OTHER), frame(LISTED));
    let bans = set_ban(&mut ebpf, ip(OTHER), Some(BanEntry::default())).unwrap();
    configure(
        &mut ebpf,
        &[],
        &filtered(settings(MITIGATION_DROP, false, bans)),
    )
    .unwrap();
    run(&mut ebpf, &banned, 6, XDP_DROP);
    run(&mut ebpf, &other, 3, XDP_PASS);
    assert_eq!(set_ban(&mut ebpf, ip(OTHER), None).unwrap(), 0);
    configure(
        &mut ebpf,
        &[],
        &filtered(settings(MITIGATION_DROP, false, 0)),
    )
    .unwrap();
    run(&mut ebpf, &banned, 4, XDP_PASS);
    assert_only_dropped(&ebpf, &[(ip(OTHER), tally(6, &banned))]);
}

#[test]
fn a_filter_in_dry_run_passes_and_counts_what_it_would_drop() {
    require_kernel!();
    let mut ebpf = loaded(
        &cidrs(&["192.0.2.1"]),
        &filtered(settings(MITIGATION_DRY_RUN, true, 0)),
    );
    let listed = frame(LISTED);
    run(&mut ebpf, &listed, 4, XDP_PASS);
    run(&mut ebpf, &frame(OTHER), 3, XDP_PASS);
    assert_only_dropped(&ebpf, &[(ip(LISTED), tally(4, &listed))]);
}

#[test]
fn a_filter_with_mitigation_off_passes_and_counts_nothing() {
    require_kernel!();
    let mut ebpf = loaded(
        &cidrs(&["192.0.2.1"]),
        &filtered(settings(MITIGATION_OFF, true, 0)),
    );
    // A ban in the table and counted in the settings: off, it is not looked at.
    let bans = set_ban(&mut ebpf, ip(OTHER), Some(BanEntry::default())).unwrap();
    configure(
        &mut ebpf,
        &cidrs(&["192.0.2.1"]),
        &filtered(settings(MITIGATION_OFF, true, bans)),
    )
    .unwrap();
    run(&mut ebpf, &frame(LISTED), 4, XDP_PASS);
    run(&mut ebpf, &frame(OTHER), 3, XDP_PASS);
    assert_only_dropped(&ebpf, &[]);
    // The same source's TCP matches the filter: counted, its listing seen, passed.
    let syn = tcp_frame(LISTED);
    run(&mut ebpf, &syn, 2, XDP_PASS);
    assert_eq!(read_global(&ebpf).unwrap().total, tally(2, &syn));
    assert_eq!(read_sources(&ebpf).unwrap()[&ip(LISTED)].blocklisted, 2);
    assert!(read_dropped(&ebpf).unwrap().is_empty());
}
