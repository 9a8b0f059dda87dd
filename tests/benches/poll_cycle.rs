//! Time to read the per-source table when it is full (65,536 sources, the default), as
//! the monitor does every interval: batched (`BPF_MAP_LOOKUP_BATCH`, what the monitor
//! uses) next to aya's key-by-key iteration. Run: `cargo xtask bench` (or `cargo bench
//! -p monitor-tests --bench poll_cycle`), as root.

#[cfg(target_os = "linux")]
fn main() {
    use std::time::Instant;

    use aya::{
        maps::PerCpuHashMap,
        programs::{TestRun, TestRunOptions, Xdp},
    };
    use monitor::backend::xdp::{load_object, load_program, read_sources};
    use monitor_common::{
        DEFAULT_MAX_SOURCES, SourceCounters, SourceKey,
        builder::{L4, Packet},
        decode::TCP_SYN,
        names,
    };

    if let Err(why) = monitor::backend::xdp::check_privileges() {
        eprintln!("SKIPPED poll_cycle: {why:#}");
        return;
    }
    let mut ebpf = load_object(DEFAULT_MAX_SOURCES).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("load monitor");
    monitor::backend::xdp::configure(
        &mut ebpf,
        &[],
        &monitor_common::counters::Settings {
            scan_epoch: 1,
            ..Default::default()
        },
    )
    .expect("settings");
    // Fill the table: one packet from each of DEFAULT_MAX_SOURCES + cache sources, so
    // every source has been flushed from the per-CPU cache into the table.
    let program: &mut Xdp = ebpf
        .program_mut(names::MONITOR_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    let fill = DEFAULT_MAX_SOURCES + 1_024;
    for i in 0..fill {
        let frame = Packet::ipv4(
            (0x0a00_0000 + i).to_be_bytes(),
            [203, 0, 113, 1],
            L4::Tcp {
                src_port: 40_000,
                dst_port: 80,
                flags: TCP_SYN,
            },
        )
        .build();
        program
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                ..TestRunOptions::new()
            })
            .expect("test_run");
    }

    const ROUNDS: usize = 5;
    let median = |mut ms: Vec<f64>| {
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    };
    let mut entries = 0;
    let batched = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                entries = read_sources(&ebpf).expect("read").len();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    let table = PerCpuHashMap::<_, SourceKey, SourceCounters>::try_from(
        ebpf.map(names::SOURCE_COUNTERS).unwrap(),
    )
    .unwrap();
    let one_by_one = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let n = table.iter().filter(Result::is_ok).count();
                assert!(n > 0);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!(
        "Per-source table read, {entries} sources (table of {DEFAULT_MAX_SOURCES}), median of {ROUNDS}"
    );
    println!("| method | ms |");
    println!("|---|---:|");
    println!(
        "| BPF_MAP_LOOKUP_BATCH (the monitor's read_sources, cache slots included) | {batched:.1} |"
    );
    println!("| key by key (aya's PerCpuHashMap::iter) | {one_by_one:.1} |");
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED poll_cycle: XDP needs Linux");
}
