//! The userspace part of a poll with the per-source table full (65,536 sources, the
//! default): everything the monitor does with a snapshot once it is read, through the
//! same `PollWork` calls as its polling loop (detection input, scan estimates, the
//! detectors, the stats line's top sources). Three cases: a random-source flood, where
//! every source of the new snapshot is new (also with the host answering each source,
//! so the table of SYN-ACKs sent is full too), and a steady table, where one source in
//! 64 sent something in the interval. Needs no root. Run: `cargo xtask bench` (or `cargo
//! bench -p monitor-tests --bench poll_work`).

use std::{
    collections::HashMap,
    hint::black_box,
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use monitor::{
    config::Config,
    detect::{Detector, Lists},
    model::{snapshot::Snapshot, source_list::SourceList},
    poll::{PollWork, RATE_WINDOW},
};
use monitor_common::{
    DEFAULT_MAX_SOURCES, GlobalCounters, SourceCounters,
    builder::{L4, Packet},
    decode,
    decode::TCP_SYN,
};

const ROUNDS: usize = 21;
const FRAME_LEN: u64 = 60;

/// One SYN from `src` to port `dst_port` of 203.0.113.1, counted as the kernel counts
/// it (scan epoch 1), into the source's and the host's counters.
fn syn(src: Ipv4Addr, dst_port: u16, source: &mut SourceCounters, host: &mut GlobalCounters) {
    let frame = Packet::ipv4(
        src.octets(),
        [203, 0, 113, 1],
        L4::Tcp {
            src_port: 40_000,
            dst_port,
            flags: TCP_SYN,
        },
    )
    .build();
    let info = decode(frame.as_slice());
    source.record(&info, FRAME_LEN, 1, false);
    host.record(&info, FRAME_LEN);
}

fn snapshot(
    taken: Instant,
    global: GlobalCounters,
    sources: SourceList<SourceCounters>,
) -> Snapshot {
    Snapshot {
        taken,
        global,
        sources,
        listed_destinations: HashMap::new(),
        large_flows: Vec::new(),
        syn_acks_sent: None,
        capture_drops: None,
        dropped: HashMap::new(),
    }
}

/// `count` sources from `first` on, one SYN each.
fn one_syn_each(first: u32, count: u32, host: &mut GlobalCounters) -> SourceList<SourceCounters> {
    (first..first + count)
        .map(|addr| {
            let ip = Ipv4Addr::from(addr);
            let mut counters = SourceCounters::default();
            syn(ip, 80, &mut counters, host);
            (IpAddr::V4(ip), counters)
        })
        .collect()
}

/// The flood (trafgen counting the source address up): the table before holds
/// 65,536 sources of one SYN each, the table after 65,536 others.
fn flood(start: Instant) -> (Snapshot, Snapshot) {
    let sources = DEFAULT_MAX_SOURCES;
    let mut host = GlobalCounters::default();
    let before = one_syn_each(0x0a00_0000, sources, &mut host);
    let prev = snapshot(start, host, before);
    let after = one_syn_each(0x0a00_0000 + sources, sources, &mut host);
    let cur = snapshot(start + Duration::from_secs(1), host, after);
    (prev, cur)
}

/// The flood when the host answers every spoofed source (a listening port): the
/// egress hook's table of SYN-ACKs sent holds each source with one SYN-ACK.
fn flood_answered(start: Instant) -> (Snapshot, Snapshot) {
    let (mut prev, mut cur) = flood(start);
    for snapshot in [&mut prev, &mut cur] {
        let answered: SourceList<u64> = snapshot.sources.keys().map(|ip| (ip, 1)).collect();
        snapshot.global.syn_ack += answered.len() as u64;
        snapshot.syn_acks_sent = Some(answered);
    }
    (prev, cur)
}

/// A busy but steady table: 65,536 sources seen before, one in 64 of which sent ten
/// more SYNs in the interval.
fn steady(start: Instant) -> (Snapshot, Snapshot) {
    let mut host = GlobalCounters::default();
    let before = one_syn_each(0x0a00_0000, DEFAULT_MAX_SOURCES, &mut host);
    let prev = snapshot(start, host, before.clone());
    let after = before
        .iter()
        .map(|(ip, counters)| {
            let mut counters = *counters;
            let IpAddr::V4(v4) = ip else { unreachable!() };
            if u32::from(v4) % 64 == 0 {
                for port in 0..10 {
                    syn(v4, 8_000 + port, &mut counters, &mut host);
                }
            }
            (ip, counters)
        })
        .collect();
    let cur = snapshot(start + Duration::from_secs(1), host, after);
    (prev, cur)
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Median milliseconds of the detection part, the stats part and both, over ROUNDS
/// polls of `cur` against `prev` (at the default 1 s interval the window starts at the
/// previous poll's snapshot), after two unmeasured ones.
fn measure(prev: &Snapshot, cur: &Snapshot) -> (f64, f64, f64, usize) {
    let config = Config::default();
    let mut detector = Detector::new(&config, Lists::default(), "bench0");
    let mut work = PollWork::new(
        config.detection.port_scan.window,
        prev.taken,
        config.capture.top,
        RATE_WINDOW,
    );
    let (mut detect_ms, mut stats_ms, mut total_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut alerts = 0;
    for round in 0..ROUNDS + 2 {
        let start = Instant::now();
        let (findings, epoch) = work.detect(&mut detector, prev, prev, cur);
        let detected = start.elapsed();
        let stats = work.interval_stats(prev, cur);
        let total = start.elapsed();
        alerts = findings.len();
        black_box((findings, epoch, stats));
        if round >= 2 {
            detect_ms.push(detected.as_secs_f64() * 1e3);
            stats_ms.push(total.checked_sub(detected).unwrap().as_secs_f64() * 1e3);
            total_ms.push(total.as_secs_f64() * 1e3);
        }
    }
    (
        median(detect_ms),
        median(stats_ms),
        median(total_ms),
        alerts,
    )
}

fn main() {
    let start = Instant::now();
    println!(
        "Userspace work per poll, {DEFAULT_MAX_SOURCES} sources in the table, median of {ROUNDS} polls"
    );
    println!("| case | detection (ms) | stats line (ms) | whole (ms) | findings |");
    println!("|---|---:|---:|---:|---:|");
    for (name, (prev, cur)) in [
        ("flood: every source new", flood(start)),
        (
            "flood, answered: a SYN-ACK to each source",
            flood_answered(start),
        ),
        ("steady: 1 source in 64 active", steady(start)),
    ] {
        let (detect, stats, total, findings) = measure(&prev, &cur);
        println!("| {name} | {detect:.1} | {stats:.1} | {total:.1} | {findings} |");
    }
}
