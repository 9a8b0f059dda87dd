//! Mitigation in the compiled XDP program, run by the kernel on crafted frames with
//! `BPF_PROG_TEST_RUN`: blocklisted and banned sources are dropped (XDP_DROP) or, in
//! dry-run, passed, and counted exactly, per source and in total.
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
    detect::lists::Cidr,
};
use monitor_common::{
    builder::{L4, Packet},
    counters::{BanEntry, MITIGATION_DROP, MITIGATION_DRY_RUN, MITIGATION_OFF, Settings, Tally},
    names,
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
