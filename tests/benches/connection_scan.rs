//! What one scan of the connection monitor costs: `connections::list_sockets` (the
//! socket tables of /proc/net, then every process's open files to find their owners),
//! on this machine as it is and with this process holding 1,000 and 5,000 extra
//! loopback connections (two sockets each). The monitor scans every 10 s by default.
//! Run: `cargo xtask bench` (or `cargo bench -p monitor-tests --bench connection_scan`),
//! as root (as the monitor runs: without it other users' processes are not read).

#[cfg(target_os = "linux")]
fn main() {
    use std::{
        net::{TcpListener, TcpStream},
        time::{Duration, Instant},
    };

    use monitor::sockets::list_sockets;

    const ROUNDS: usize = 20;

    fn median_scan() -> (Duration, usize, usize, usize) {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut last = None;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let listing = list_sockets().expect("scan");
            times.push(started.elapsed());
            last = Some(listing);
        }
        times.sort();
        let listing = last.expect("one scan");
        let processes = std::fs::read_dir("/proc").map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        });
        (
            times[ROUNDS / 2],
            listing.sockets.len(),
            listing.names.len(),
            processes,
        )
    }

    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = listener.local_addr().unwrap();
    let mut held: Vec<TcpStream> = Vec::new();
    println!("connection scan, median of {ROUNDS} (this machine, as root):");
    println!(
        "| extra connections | sockets | processes | owners named | scan (ms) | share of a 10 s interval |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for extra in [0usize, 1_000, 5_000] {
        while held.len() / 2 < extra {
            held.push(TcpStream::connect(addr).expect("connect"));
            held.push(listener.accept().expect("accept").0);
        }
        let (time, sockets, named, processes) = median_scan();
        println!(
            "| {extra} | {sockets} | {processes} | {named} | {:.2} | {:.3}% |",
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / 10.0 * 100.0
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED connection_scan: the /proc scanner is Linux's");
}
