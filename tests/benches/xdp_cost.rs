//! Cost per packet of the monitor's XDP program, measured by the kernel itself
//! (`BPF_PROG_TEST_RUN` with a large repeat count), side by side with a program that
//! only returns `XDP_PASS`. Run: `cargo xtask bench` (or `cargo bench -p monitor-tests
//! --bench xdp_cost`), as root.

#[cfg(target_os = "linux")]
fn main() {
    use std::net::IpAddr;

    use aya::programs::{TestRun, TestRunOptions, Xdp};
    use monitor::backend::xdp::{load_object, load_program};
    use monitor_common::{
        builder::{L4, Packet},
        counters::{BanEntry, MITIGATION_DROP, Settings},
        decode::{ETHERTYPE_VLAN, IPPROTO_HOPOPTS, TCP_SYN},
        names,
        view::{PacketFilter, TERM_CLASS, TERM_DST_PORT, TERM_SRC_PORT, VIEW_FILTER, VIEW_LOG},
    };

    const REPEAT: u32 = 5_000_000;
    const ROUNDS: usize = 5;

    if let Err(why) = monitor::backend::xdp::check_privileges() {
        eprintln!("SKIPPED xdp_cost: {why:#}");
        return;
    }
    let a = [192, 0, 2, 1];
    let host = [203, 0, 113, 1];
    let mut a6 = [0u8; 16];
    a6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a6[15] = 0xa;
    let mut host6 = a6;
    host6[15] = 1;
    let syn = L4::Tcp {
        src_port: 40_000,
        dst_port: 80,
        flags: TCP_SYN,
    };
    let udp = L4::Udp {
        src_port: 5_000,
        dst_port: 53,
    };
    let frames = [
        ("TCP SYN (IPv4)", Packet::ipv4(a, host, syn.clone()).build()),
        (
            "UDP (IPv4)",
            Packet::ipv4(a, host, udp.clone()).payload(64).build(),
        ),
        (
            "ICMP echo (IPv4)",
            Packet::ipv4(a, host, L4::Echo).payload(56).build(),
        ),
        (
            "UDP (IPv6, hop-by-hop)",
            Packet::ipv6(a6, host6, udp)
                .ext(IPPROTO_HOPOPTS)
                .payload(64)
                .build(),
        ),
        (
            "TCP SYN (802.1Q VLAN)",
            Packet::ipv4(a, host, syn).vlan(ETHERTYPE_VLAN).build(),
        ),
    ];

    let mut ebpf = load_object(monitor_common::DEFAULT_MAX_SOURCES).expect("load object");
    load_program(&mut ebpf, names::MONITOR_PROGRAM).expect("load monitor");
    load_program(&mut ebpf, names::PASS_PROGRAM).expect("load pass_only");

    // The kernel's average ns per run, one round.
    let round = |ebpf: &mut aya::Ebpf, program: &str, frame: &[u8]| -> f64 {
        let program: &mut Xdp = ebpf.program_mut(program).unwrap().try_into().unwrap();
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: REPEAT,
                ..TestRunOptions::new()
            })
            .expect("test_run");
        result.duration.as_nanos() as f64
    };
    // Medians over rounds of both programs, their rounds alternating: a busy spell on
    // a shared machine then falls on both programs' rounds, not on one's five.
    let costs = |ebpf: &mut aya::Ebpf, frame: &[u8]| -> (f64, f64) {
        let (mut base, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            base.push(round(ebpf, names::PASS_PROGRAM, frame));
            ours.push(round(ebpf, names::MONITOR_PROGRAM, frame));
        }
        let median = |mut runs: Vec<f64>| {
            runs.sort_by(f64::total_cmp);
            runs[ROUNDS / 2]
        };
        (median(base), median(ours))
    };

    // Worst case: a random-source flood, every packet from a source never seen before
    // (cache slot taken over, its old occupant flushed into the LRU hash, new entries).
    // One frame per run, so each run's own time; mean over all the sources.
    let distinct: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let src = (0x0a00_0000 + i).to_be_bytes();
            Packet::ipv4(
                src,
                host,
                L4::Tcp {
                    src_port: 40_000,
                    dst_port: 80,
                    flags: TCP_SYN,
                },
            )
            .build()
        })
        .collect();
    let mean_single_runs = |ebpf: &mut aya::Ebpf, program: &str| -> f64 {
        let program: &mut Xdp = ebpf.program_mut(program).unwrap().try_into().unwrap();
        let total: u128 = distinct
            .iter()
            .map(|frame| {
                program
                    .test_run(TestRunOptions {
                        data_in: Some(frame),
                        ..TestRunOptions::new()
                    })
                    .expect("test_run")
                    .duration
                    .as_nanos()
            })
            .sum();
        total as f64 / distinct.len() as f64
    };
    let miss_base = mean_single_runs(&mut ebpf, names::PASS_PROGRAM);
    let miss = mean_single_runs(&mut ebpf, names::MONITOR_PROGRAM);

    println!("XDP cost per packet, BPF_PROG_TEST_RUN, repeat {REPEAT}, median of {ROUNDS} rounds");
    println!("| frame | pass_only (ns) | monitor (ns) | monitor - pass_only (ns) |");
    println!("|---|---:|---:|---:|");
    for (name, frame) in &frames {
        let (base, ours) = costs(&mut ebpf, frame);
        println!("| {name} | {base:.0} | {ours:.0} | {:.0} |", ours - base);
    }
    println!(
        "| TCP SYN, a new source every packet (20,000 sources, one run each) | {miss_base:.0} | {miss:.0} | {:.0} |",
        miss - miss_base
    );

    // Another build of the program (say, before a change), side by side with this one:
    // `XDP_COST_COMPARE=path/to/monitor-xdp`. Its maps keep their zeroed settings.
    if let Some(path) = std::env::var_os("XDP_COST_COMPARE") {
        let mut other = aya::EbpfLoader::new()
            .load_file(&path)
            .expect("load the object to compare");
        load_program(&mut other, names::MONITOR_PROGRAM).expect("load its monitor");
        println!(
            "\nThis build against {}",
            std::path::Path::new(&path).display()
        );
        println!("| frame | that build (ns) | this build (ns) | this - that (ns) |");
        println!("|---|---:|---:|---:|");
        for (name, frame) in &frames {
            let (mut theirs, mut ours) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                theirs.push(round(&mut other, names::MONITOR_PROGRAM, frame));
                ours.push(round(&mut ebpf, names::MONITOR_PROGRAM, frame));
            }
            theirs.sort_by(f64::total_cmp);
            ours.sort_by(f64::total_cmp);
            let (theirs, ours) = (theirs[ROUNDS / 2], ours[ROUNDS / 2]);
            println!(
                "| {name} | {theirs:.0} | {ours:.0} | {:.0} |",
                ours - theirs
            );
        }
    }

    // The packet view on (`--filter`, `--packets`): what those cost when asked for.
    let udp_frame = &frames[1].1;
    let udp_port_53 = PacketFilter {
        terms: TERM_CLASS | TERM_SRC_PORT | TERM_DST_PORT,
        port: 53,
        class: monitor_common::Class::Udp as u8,
        ..Default::default()
    };
    let views = [
        (
            "UDP (IPv4), --filter \"udp and port 53\" (matches)",
            Settings {
                packet_view: VIEW_FILTER,
                filter: udp_port_53,
                ..Default::default()
            },
        ),
        (
            "UDP (IPv4), --filter \"tcp\" (refused: not counted)",
            Settings {
                packet_view: VIEW_FILTER,
                filter: PacketFilter {
                    terms: TERM_CLASS,
                    class: monitor_common::Class::Tcp as u8,
                    ..Default::default()
                },
                ..Default::default()
            },
        ),
        (
            "UDP (IPv4), --packets, over the rate cap (skipped)",
            Settings {
                packet_view: VIEW_LOG,
                packet_log_rate: 100,
                ..Default::default()
            },
        ),
        (
            "UDP (IPv4), --packets, no cap (ring write, or ring full)",
            Settings {
                packet_view: VIEW_LOG,
                packet_log_rate: u64::MAX,
                ..Default::default()
            },
        ),
    ];
    for (name, settings) in views {
        monitor::backend::xdp::configure(&mut ebpf, &[], &settings).expect("settings");
        let (base, ours) = costs(&mut ebpf, udp_frame);
        println!("| {name} | {base:.0} | {ours:.0} | {:.0} |", ours - base);
    }
    // Mitigation on (`--mitigate`) with nothing banned: what every packet pays while no
    // attack is being dropped. Then the same frames with their source banned: the cost
    // of a drop (the ban lookup and the per-source drop count), XDP_DROP returned.
    let mitigating = |bans| Settings {
        scan_epoch: 1,
        mitigation: MITIGATION_DROP,
        bans,
        ..Default::default()
    };
    monitor::backend::xdp::configure(&mut ebpf, &[], &mitigating(0)).expect("settings");
    println!();
    println!("Mitigation on, nothing banned");
    println!("| frame | pass_only (ns) | monitor (ns) | monitor - pass_only (ns) |");
    println!("|---|---:|---:|---:|");
    for (name, frame) in &frames {
        let (base, ours) = costs(&mut ebpf, frame);
        println!("| {name} | {base:.0} | {ours:.0} | {:.0} |", ours - base);
    }
    let bans = [IpAddr::from(a), IpAddr::from(a6)]
        .into_iter()
        .map(|ip| {
            monitor::backend::xdp::set_ban(&mut ebpf, ip, Some(BanEntry::default())).expect("ban")
        })
        .last()
        .unwrap_or(0);
    monitor::backend::xdp::configure(&mut ebpf, &[], &mitigating(bans)).expect("settings");
    println!();
    println!("Mitigation on, the frame's source banned (XDP_DROP)");
    println!("| frame | pass_only (ns) | monitor (ns) | monitor - pass_only (ns) |");
    println!("|---|---:|---:|---:|");
    for (name, frame) in &frames {
        let (base, ours) = costs(&mut ebpf, frame);
        println!("| {name} | {base:.0} | {ours:.0} | {:.0} |", ours - base);
    }
    // A filter with mitigation on: a packet the filter refuses is not counted (it
    // skips the source cache), so its source's ban and listing are looked up directly.
    // The UDP frame under `--filter "tcp"`; the blocklist rows last, since `configure`
    // only adds to the trie.
    let refusing = |mitigation: Settings| Settings {
        packet_view: VIEW_FILTER,
        filter: PacketFilter {
            terms: TERM_CLASS,
            class: monitor_common::Class::Tcp as u8,
            ..Default::default()
        },
        ..mitigation
    };
    let listing = |bans| Settings {
        blocklist_active: 1,
        blocklist_generation: 1,
        ..mitigating(bans)
    };
    let cidr = |text: &str| -> monitor::model::cidr::Cidr { text.parse().expect("cidr") };
    let refused = [
        ("nothing banned, no blocklist", vec![], mitigating(0)),
        ("source banned (XDP_DROP)", vec![], mitigating(bans)),
        (
            "blocklist on, source not listed",
            vec![cidr("198.51.100.0/24")],
            listing(0),
        ),
        (
            "source blocklisted (XDP_DROP)",
            vec![cidr("192.0.2.1")],
            listing(0),
        ),
    ];
    println!();
    println!("UDP (IPv4), --filter \"tcp\" (refused: not counted), mitigation on");
    println!("| case | pass_only (ns) | monitor (ns) | monitor - pass_only (ns) |");
    println!("|---|---:|---:|---:|");
    for (name, blocklist, settings) in refused {
        monitor::backend::xdp::configure(&mut ebpf, &blocklist, &refusing(settings))
            .expect("settings");
        let (base, ours) = costs(&mut ebpf, udp_frame);
        println!("| {name} | {base:.0} | {ours:.0} | {:.0} |", ours - base);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED xdp_cost: XDP needs Linux");
}
