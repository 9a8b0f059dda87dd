//! Time to read the per-source table when it is full (65,536 entries, the default), as
//! the monitor does every interval: the scan of the mapped table alone, and the whole
//! `read_sources` (the scan, the per-CPU caches, and the map of sources it builds).
//! Run: `cargo xtask bench` (or `cargo bench -p monitor-tests --bench poll_cycle`), as
//! root.

#[cfg(target_os = "linux")]
fn main() {
    use std::time::Instant;

    use aya::programs::{TestRun, TestRunOptions, Xdp};
    use monitor::backend::xdp::{MappedTable, load_object, load_program, read_sources};
    use monitor_common::{
        DEFAULT_MAX_SOURCES,
        builder::{L4, Packet},
        decode::TCP_SYN,
        names,
    };

    const ROUNDS: usize = 5;

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
    // Fill the table: one packet from each of twice as many sources as it holds, so
    // that (hashing being uneven) every set is full, as under a random-source flood.
    let program: &mut Xdp = ebpf
        .program_mut(names::MONITOR_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    let fill = 2 * DEFAULT_MAX_SOURCES;
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
    let view = MappedTable::<monitor_common::SourceCounters>::map(&ebpf, names::SOURCE_TABLE)
        .expect("map the table");
    let mut used = 0;
    let scan_only = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                used = 0;
                view.for_each(|_, _| used += 1);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!(
        "Per-source table read, {used} of {DEFAULT_MAX_SOURCES} entries used, {entries} sources \
         with the per-CPU caches; median of {ROUNDS}"
    );
    println!("| step | ms |");
    println!("|---|---:|");
    println!("| scan of the mapped table (`MappedTable::for_each`) | {scan_only:.1} |");
    println!(
        "| the monitor's whole read (`read_sources`: scan, caches, map of sources) | {batched:.1} |"
    );
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED poll_cycle: XDP needs Linux");
}
