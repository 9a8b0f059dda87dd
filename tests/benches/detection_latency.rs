//! Detection latency: from the first packet of a SYN flood to the alert, for the monitor
//! (`--interval 250ms`) and, on the same flood, for fastnetmon (Debian's package, port
//! mirror mode on `AF_PACKET`, alert = its notify script's `date +%s.%N`).
//!
//! Each run builds a fresh namespace and veth pair (`TestNet`), starts one detector on
//! the host end, opens a raw `AF_PACKET` socket on the host end with kernel receive
//! timestamps (`SO_TIMESTAMPNS`), waits 0–1 s (run i of n in the i-th n-th of the
//! second, so that the floods start at phases spread over the detectors' polling
//! periods), then runs `hping3 -S -p 80 --flood` inside the namespace. Latency = when
//! the detector reported the flood − the kernel's timestamp of the first SYN on the
//! host end. All clocks are `CLOCK_REALTIME` on this machine. Traffic never leaves the
//! namespace and its veth pair. The monitor also posts its alert to a generic webhook, a
//! recording HTTP server on loopback: the second latency is that request's arrival.
//!
//! Run: `cargo xtask bench` (or `cargo bench -p monitor-tests --bench detection_latency`
//! after `cargo build --release -p monitor`), as root.

#[cfg(target_os = "linux")]
fn main() {
    if let Err(why) = monitor::backend::xdp::check_privileges() {
        eprintln!("SKIPPED detection_latency: {why:#}");
        return;
    }
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIPPED detection_latency: XDP needs Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::{
        fs,
        io::ErrorKind,
        mem,
        net::Ipv4Addr,
        os::unix::fs::PermissionsExt as _,
        path::{Path, PathBuf},
        process::{Child, Command, Stdio},
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU32, Ordering},
        },
        thread::{self, JoinHandle},
        time::{Duration, Instant, SystemTime, UNIX_EPOCH},
    };

    use anyhow::{Context as _, Result, bail};
    use monitor_tests::{http_server::TestServer, monitor_process::MonitorProcess, netns::TestNet};

    /// Runs per detector: enough for a min/median/max, short enough for the whole bench
    /// to stay under two minutes.
    const RUNS: usize = 7;
    const INTERVAL: &str = "250ms";
    /// fastnetmon's `threshold_pps` values: 10,000 pps, and 500 pps, the monitor's own
    /// per-source SYN threshold (its default), fastnetmon's most favourable setting.
    const FASTNETMON_THRESHOLDS: [u64; 2] = [10_000, 500];
    /// A run whose detector has said nothing by then counts as a miss.
    const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

    #[derive(Clone, Copy)]
    enum Detector {
        Monitor,
        Fastnetmon { threshold_pps: u64 },
    }

    impl Detector {
        fn name(&self) -> String {
            match self {
                Detector::Monitor => format!("monitor --interval {INTERVAL}"),
                Detector::Fastnetmon { threshold_pps } => {
                    format!("fastnetmon, threshold_pps {}", thousands(*threshold_pps))
                }
            }
        }
    }

    /// One run's figures, in milliseconds after the first SYN's kernel timestamp.
    struct Sample {
        /// When the detector's report reached us: the monitor's alert line read from its
        /// stdout, fastnetmon's notify script's `date`.
        latency_ms: f64,
        /// The monitor's alert line's own `time` field (millisecond resolution).
        line_time_ms: Option<f64>,
        /// When the monitor's webhook request for the alert had arrived at the receiver.
        webhook_ms: Option<f64>,
        /// From spawning hping3 to its first SYN on the host end.
        spawn_to_first_ms: f64,
        /// The flood's rate on the host end while it lasted.
        flood_pps: f64,
        /// fastnetmon's `pps` argument to the notify script (its moving average).
        reported: String,
    }

    pub(crate) fn main() {
        let fastnetmon = find_program("fastnetmon");
        let mut detectors = vec![Detector::Monitor];
        match &fastnetmon {
            Some(_) => detectors.extend(
                FASTNETMON_THRESHOLDS
                    .iter()
                    .map(|&threshold_pps| Detector::Fastnetmon { threshold_pps }),
            ),
            None => eprintln!(
                "SKIPPED fastnetmon: not installed (`cargo xtask bench` installs Debian's \
                 `fastnetmon` package); measuring the monitor alone"
            ),
        }
        let fastnetmon_version = fastnetmon.as_ref().map(|path| {
            Command::new(path)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        });

        println!(
            "Detection latency: first SYN of `hping3 -S -p 80 --flood` (kernel timestamp on \
             the host end of a veth) to the detector's report; {RUNS} runs each"
        );
        let mut rng = XorShift::seeded();
        let mut results = Vec::new();
        for detector in &detectors {
            let mut samples = Vec::new();
            let mut misses = Vec::new();
            for run in 1..=RUNS {
                // Stratified: run i starts the flood in the i-th seventh of a second after
                // the detector is ready, at a random point of it. Both detectors work in
                // ticks (250 ms, 1 s), so their latency depends on that phase; spreading
                // it evenly keeps the median from hanging on a lucky draw.
                let slot = 1000 / RUNS as u64;
                let phase = Duration::from_millis((run as u64 - 1) * slot + rng.below(slot));
                match run_once(*detector, phase) {
                    Ok(s) => {
                        println!(
                            "  {} run {run}: {:.0} ms{} (flood {} pps, hping3 spawn to first \
                             SYN {:.1} ms, phase {} ms{})",
                            detector.name(),
                            s.latency_ms,
                            s.line_time_ms
                                .map(|t| format!(", alert `time` field {t:.0} ms"))
                                .unwrap_or_default()
                                + &s.webhook_ms
                                    .map(|t| format!(", webhook received {t:.0} ms"))
                                    .unwrap_or_default(),
                            thousands(s.flood_pps as u64),
                            s.spawn_to_first_ms,
                            phase.as_millis(),
                            if s.reported.is_empty() {
                                String::new()
                            } else {
                                format!(", {}", s.reported)
                            },
                        );
                        samples.push(s);
                    }
                    Err(why) => {
                        println!("  {} run {run}: no report: {why:#}", detector.name());
                        misses.push(format!("{why:#}"));
                    }
                }
            }
            results.push((*detector, samples, misses));
        }

        println!();
        println!(
            "| detector | report | runs | min (ms) | median (ms) | max (ms) | flood (pps, median) |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|");
        let version = fastnetmon_version
            .as_deref()
            .map(|v| v.trim_start_matches("Version:").trim())
            .unwrap_or_default();
        for (detector, samples, misses) in &results {
            let floods: Vec<f64> = samples.iter().map(|s| s.flood_pps).collect();
            let flood = median(&floods).map_or("-".into(), |m| thousands(m as u64));
            let runs = if misses.is_empty() {
                samples.len().to_string()
            } else {
                format!("{} ({} missed)", samples.len(), misses.len())
            };
            let latencies: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
            match detector {
                Detector::Monitor => {
                    let name = format!("monitor, `--interval {INTERVAL}`, default thresholds");
                    println!(
                        "| {name} | alert line read | {runs} | {} | {flood} |",
                        min_median_max(&latencies)
                    );
                    let fields: Vec<f64> = samples.iter().filter_map(|s| s.line_time_ms).collect();
                    println!(
                        "| {name} | alert line's `time` field | {runs} | {} | {flood} |",
                        min_median_max(&fields)
                    );
                    let hooks: Vec<f64> = samples.iter().filter_map(|s| s.webhook_ms).collect();
                    println!(
                        "| {name} | generic webhook request received | {runs} | {} | {flood} |",
                        min_median_max(&hooks)
                    );
                }
                Detector::Fastnetmon { threshold_pps } => println!(
                    "| fastnetmon {version}, AF_PACKET, `threshold_pps = {}` | notify script's \
                     `date` | {runs} | {} | {flood} |",
                    thousands(*threshold_pps),
                    min_median_max(&latencies)
                ),
            }
        }
        println!(
            "\nmonitor: SYN flood at 500 SYN/s from one source (its default). fastnetmon: \
             `ban_for_pps`, `average_calculation_time = 5`, `speed_calculation_delay = 1` \
             (the package's defaults), per-host pps of a monitored host."
        );
    }

    fn min_median_max(values: &[f64]) -> String {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        match (sorted.first(), median(&sorted), sorted.last()) {
            (Some(min), Some(med), Some(max)) => format!("{min:.0} | {med:.0} | {max:.0}"),
            _ => "- | - | -".into(),
        }
    }

    fn median(values: &[f64]) -> Option<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => None,
            n if n % 2 == 1 => Some(sorted[n / 2]),
            n => Some(f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
        }
    }

    fn thousands(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
        match to.duration_since(from) {
            Ok(d) => d.as_secs_f64() * 1e3,
            Err(e) => -e.duration().as_secs_f64() * 1e3,
        }
    }

    /// One flood against one freshly started detector.
    fn run_once(detector: Detector, phase: Duration) -> Result<Sample> {
        let net = TestNet::new().context("failed to create the test network")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let receiver = runtime.block_on(TestServer::start(Vec::new()));
        let webhook = format!("generic={}", receiver.url("/alert"));
        let mut running = match detector {
            Detector::Monitor => Running::Monitor(MonitorProcess::start(&[
                "--iface",
                &net.host_if,
                "--interval",
                INTERVAL,
                "--webhook",
                &webhook,
                "--no-connections",
            ])?),
            Detector::Fastnetmon { threshold_pps } => {
                Running::Fastnetmon(Fastnetmon::start(&net, threshold_pps)?)
            }
        };
        let capture = FirstSyn::start(&net.host_if, net.ns_v4)?;
        thread::sleep(phase);

        let rx_before = rx_packets(&net.host_if)?;
        let spawned_at = SystemTime::now();
        let started = Instant::now();
        let flood = KillOnDrop(
            net.command("hping3")
                .args(["-S", "-p", "80", "--flood", &net.host_v4.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("failed to start hping3")?,
        );
        let detection = running.wait_for_detection(DETECT_TIMEOUT);
        let webhook_at = match (&running, &detection) {
            (Running::Monitor(_), Ok(_)) => webhook_arrival(&receiver),
            _ => None,
        };
        let flood_secs = started.elapsed().as_secs_f64();
        let rx_after = rx_packets(&net.host_if)?;
        drop(flood);
        let first = capture.finish();
        running.stop();
        let detection = detection?;
        let first = first?;
        Ok(Sample {
            latency_ms: ms_between(first, detection.at),
            line_time_ms: detection.line_time.map(|t| ms_between(first, t)),
            webhook_ms: webhook_at.map(|t| ms_between(first, t)),
            spawn_to_first_ms: ms_between(spawned_at, first),
            flood_pps: rx_after.saturating_sub(rx_before) as f64 / flood_secs,
            reported: detection.note,
        })
    }

    /// When the first webhook request naming a SYN flood had arrived, on the wall clock
    /// (the receiver stamps requests with the monotonic clock).
    fn webhook_arrival(receiver: &TestServer) -> Option<SystemTime> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let (now_mono, now_wall) = (Instant::now(), SystemTime::now());
            let flood = receiver
                .requests()
                .into_iter()
                .find(|r| String::from_utf8_lossy(&r.body).contains("syn_flood"));
            if let Some(request) = flood {
                return Some(now_wall - now_mono.duration_since(request.at));
            }
            thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn rx_packets(iface: &str) -> Result<u64> {
        let path = format!("/sys/class/net/{iface}/statistics/rx_packets");
        Ok(fs::read_to_string(&path)
            .with_context(|| format!("failed to read {path}"))?
            .trim()
            .parse()?)
    }

    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    struct Detection {
        /// When the report reached us (alert line read / notify script's `date`).
        at: SystemTime,
        /// The alert line's `time` field.
        line_time: Option<SystemTime>,
        note: String,
    }

    enum Running {
        Monitor(MonitorProcess),
        Fastnetmon(Fastnetmon),
    }

    impl Running {
        fn wait_for_detection(&mut self, timeout: Duration) -> Result<Detection> {
            let deadline = Instant::now() + timeout;
            match self {
                Running::Monitor(monitor) => loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let line = monitor.wait_for("alert", left)?;
                    // Read as the line arrives: the reader thread hands it over at once.
                    let at = SystemTime::now();
                    if line["kind"] != "syn_flood" {
                        continue;
                    }
                    let time = line["time"].as_str().context("alert without `time`")?;
                    let line_time = humantime::parse_rfc3339(time)
                        .with_context(|| format!("bad `time` in {line}"))?;
                    return Ok(Detection {
                        at,
                        line_time: Some(line_time),
                        note: String::new(),
                    });
                },
                Running::Fastnetmon(fastnetmon) => fastnetmon.wait_for_ban(deadline),
            }
        }

        fn stop(self) {
            match self {
                Running::Monitor(monitor) => {
                    let _ = monitor.kill();
                }
                Running::Fastnetmon(fastnetmon) => drop(fastnetmon),
            }
        }
    }

    fn find_program(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }

    /// fastnetmon run in the foreground as our child, with its own configuration, log,
    /// notify script and state files in a temporary directory.
    struct Fastnetmon {
        child: Child,
        dir: PathBuf,
    }

    static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

    impl Fastnetmon {
        fn start(net: &TestNet, threshold_pps: u64) -> Result<Self> {
            let program = find_program("fastnetmon").context("fastnetmon is not installed")?;
            let dir = std::env::temp_dir().join(format!(
                "monitor-bench-fastnetmon-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let d = dir.display();
            // Only the host end's address: fastnetmon counts a packet between two of
            // "our" addresses as internal, not as incoming, so the namespace's address
            // must stay outside the list.
            fs::write(dir.join("networks_list"), format!("{}/32\n", net.host_v4))?;
            fs::write(dir.join("networks_whitelist"), "")?;
            // fastnetmon runs it as `<script> <ip> <direction> <pps> <action>`, with the
            // attack's details on stdin: first "ban", later "attack_details".
            let script = dir.join("notify.sh");
            fs::write(
                &script,
                format!(
                    "#!/bin/sh\necho \"$(date +%s.%N) $4 $1 $2 $3\" >> {d}/notify.log\ncat > /dev/null\n"
                ),
            )?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
            fs::write(
                dir.join("fastnetmon.conf"),
                fastnetmon_config(&dir, &net.host_if, threshold_pps),
            )?;
            let console = fs::File::create(dir.join("console.log"))?;
            let child = Command::new(program)
                .arg("--configuration_file")
                .arg(dir.join("fastnetmon.conf"))
                .arg("--log_file")
                .arg(dir.join("fastnetmon.log"))
                .arg("--disable_pid_logic")
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(console.try_clone()?)
                .stderr(console)
                .spawn()
                .context("failed to start fastnetmon")?;
            let mut fastnetmon = Self { child, dir };
            fastnetmon.wait_until_capturing(&net.host_if)?;
            Ok(fastnetmon)
        }

        /// Until its log says the `AF_PACKET` workers started and their sockets are bound
        /// to the interface (as /proc/net/packet lists them).
        fn wait_until_capturing(&mut self, iface: &str) -> Result<()> {
            let ifindex = ifindex(iface)?;
            let marker = format!("Start AF_PACKET worker process for {iface}");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!("fastnetmon exited ({status}): {}", self.log_tail());
                }
                let log = fs::read_to_string(self.dir.join("fastnetmon.log")).unwrap_or_default();
                if log.contains(&marker) && packet_sockets_on(ifindex)? > 0 {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!("fastnetmon never started capturing: {}", self.log_tail());
                }
                thread::sleep(Duration::from_millis(20));
            }
        }

        fn wait_for_ban(&mut self, deadline: Instant) -> Result<Detection> {
            let notify = self.dir.join("notify.log");
            loop {
                let text = fs::read_to_string(&notify).unwrap_or_default();
                if let Some(line) = text.lines().find(|l| l.split(' ').nth(1) == Some("ban")) {
                    let mut words = line.split(' ');
                    let stamp = words.next().unwrap_or_default();
                    let at = parse_epoch(stamp)
                        .with_context(|| format!("bad timestamp in notify line `{line}`"))?;
                    let args: Vec<&str> = words.collect();
                    return Ok(Detection {
                        at,
                        line_time: None,
                        note: format!("notify args: {}", args.join(" ")),
                    });
                }
                if let Some(status) = self.child.try_wait()? {
                    bail!("fastnetmon exited ({status}): {}", self.log_tail());
                }
                if Instant::now() > deadline {
                    bail!("fastnetmon reported nothing: {}", self.log_tail());
                }
                thread::sleep(Duration::from_millis(2));
            }
        }

        fn log_tail(&self) -> String {
            let log = fs::read_to_string(self.dir.join("fastnetmon.log")).unwrap_or_default();
            let console = fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().chain(console.lines()).collect();
            lines[lines.len().saturating_sub(8)..].join(" | ")
        }
    }

    impl Drop for Fastnetmon {
        fn drop(&mut self) {
            if let Ok(None) = self.child.try_wait() {
                // SAFETY: our own child's pid.
                unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(3);
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(20));
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// fastnetmon.conf: Debian's /etc/fastnetmon.conf defaults for detection, with
    /// `AF_PACKET` capture on the test interface, a low pps threshold, and everything that
    /// would listen, phone home or write outside `dir` switched off or moved into it.
    fn fastnetmon_config(dir: &Path, iface: &str, threshold_pps: u64) -> String {
        let d = dir.display();
        format!(
            "\
logging_level = info
logging_local_syslog_logging = off
logging_remote_syslog_logging = off
# No usage report to the vendor's server (the default is to send one).
disable_usage_report = on
enable_ban = on
enable_ban_ipv6 = on
process_incoming_traffic = on
process_outgoing_traffic = on
ban_time = 1900
ban_details_records_count = 20
networks_list_path = {d}/networks_list
white_list_path = {d}/networks_whitelist
monitor_local_ip_addresses = off
monitor_openvz_vps_ip_addresses = off
# Detection: the package's defaults, but for the threshold.
enable_connection_tracking = on
ban_for_pps = on
ban_for_bandwidth = off
ban_for_flows = off
threshold_pps = {threshold_pps}
average_calculation_time = 5
speed_calculation_delay = 1
# Port mirror capture on AF_PACKET, the package's default mirror mode.
mirror_afpacket = on
mirror_afxdp = off
mirror_af_packet_fanout_mode = cpu
mirror_af_packet_custom_sampling_rate = 1
pcap = off
netflow = off
sflow = off
interfaces = {iface}
notify_script_path = {d}/notify.sh
collect_attack_pcap_dumps = off
redis_enabled = off
mongodb_enabled = off
exabgp = off
gobgp = off
influxdb = off
graphite = off
kafka_traffic_export = off
enable_api = off
prometheus = off
pid_path = {d}/fastnetmon.pid
cli_stats_file_path = {d}/fastnetmon.dat
cli_stats_ipv6_file_path = {d}/fastnetmon_ipv6.dat
"
        )
    }

    /// `1795321935.717808158` (`date +%s.%N`) as a time.
    fn parse_epoch(text: &str) -> Option<SystemTime> {
        let (secs, nanos) = text.split_once('.')?;
        let secs: u64 = secs.parse().ok()?;
        let nanos: u32 = format!("{nanos:0<9}").get(..9)?.parse().ok()?;
        Some(UNIX_EPOCH + Duration::new(secs, nanos))
    }

    fn ifindex(iface: &str) -> Result<u32> {
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            bail!("no interface {iface}");
        }
        Ok(index)
    }

    /// How many packet sockets are bound to the interface (/proc/net/packet's `Iface`).
    fn packet_sockets_on(ifindex: u32) -> Result<usize> {
        let table = fs::read_to_string("/proc/net/packet")?;
        Ok(table
            .lines()
            .skip(1)
            .filter(|line| line.split_whitespace().nth(4) == Some(&ifindex.to_string()))
            .count())
    }

    /// The kernel's receive timestamp of the first TCP SYN from `src` on an interface:
    /// a raw `AF_PACKET` socket bound to it, `SO_TIMESTAMPNS`, read on a thread.
    struct FirstSyn {
        thread: JoinHandle<Result<SystemTime>>,
        stop: Arc<AtomicBool>,
    }

    impl FirstSyn {
        /// Returns once the socket is bound: every packet from then on is seen. The
        /// thread closes the socket at the first SYN, so the flood is not copied to it.
        fn start(iface: &str, src: Ipv4Addr) -> Result<Self> {
            let socket = PacketSocket::bind(ifindex(iface)?)?;
            let stop = Arc::new(AtomicBool::new(false));
            let stopping = stop.clone();
            let thread = thread::spawn(move || {
                let mut frame = [0u8; 256];
                while !stopping.load(Ordering::Relaxed) {
                    // (No let chains: the workspace's rust-version is 1.87.)
                    if let Some((len, stamp)) = socket.recv(&mut frame)? {
                        if is_syn_from(&frame[..len], src) {
                            return Ok(stamp);
                        }
                    }
                }
                bail!("no SYN from {src} arrived")
            });
            Ok(Self { thread, stop })
        }

        /// The first SYN's timestamp; gives up at once if none has arrived yet.
        fn finish(self) -> Result<SystemTime> {
            if !self.thread.is_finished() {
                // Give it a moment to read what is queued, then stop it.
                thread::sleep(Duration::from_millis(200));
                self.stop.store(true, Ordering::Relaxed);
            }
            self.thread
                .join()
                .map_err(|_| anyhow::anyhow!("capture thread panicked"))?
        }
    }

    /// Ethernet + IPv4 + TCP with SYN set and ACK clear, from `src`.
    fn is_syn_from(frame: &[u8], src: Ipv4Addr) -> bool {
        if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] {
            return false;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ip[9] != 6 || ip[12..16] != src.octets() || ip.len() < ihl + 20 {
            return false;
        }
        let flags = ip[ihl + 13];
        flags & 0x02 != 0 && flags & 0x10 == 0
    }

    struct PacketSocket(std::os::fd::OwnedFd);

    impl PacketSocket {
        fn bind(ifindex: u32) -> Result<Self> {
            use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
            let all = (libc::ETH_P_ALL as u16).to_be();
            // Protocol 0 until bound: the socket receives nothing from other interfaces.
            // SAFETY: plain socket(2).
            let fd =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                bail!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
            }
            // SAFETY: a descriptor we just opened and own.
            let socket = Self(unsafe { OwnedFd::from_raw_fd(fd) });
            socket.set(libc::SO_TIMESTAMPNS, &1i32)?;
            let timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            socket.set(libc::SO_RCVTIMEO, &timeout)?;
            // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
            let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_protocol = all;
            address.sll_ifindex = ifindex as i32;
            // SAFETY: a valid sockaddr_ll and its size.
            let rc = unsafe {
                libc::bind(
                    socket.0.as_raw_fd(),
                    (&raw const address).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                bail!("bind(AF_PACKET): {}", std::io::Error::last_os_error());
            }
            Ok(socket)
        }

        fn set<T>(&self, option: i32, value: &T) -> Result<()> {
            use std::os::fd::AsRawFd as _;
            // SAFETY: `value` is a live T of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    self.0.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    std::ptr::from_ref::<T>(value).cast(),
                    size_of::<T>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                bail!("setsockopt({option}): {}", std::io::Error::last_os_error());
            }
            Ok(())
        }

        /// One frame and its kernel timestamp, or None after the receive timeout.
        #[allow(
            trivial_numeric_casts,
            reason = "`msg_controllen` is usize with glibc, socklen_t with musl: a cast only on some targets"
        )]
        fn recv(&self, frame: &mut [u8]) -> Result<Option<(usize, SystemTime)>> {
            use std::os::fd::AsRawFd as _;
            // u64s: aligned for cmsghdr.
            let mut control = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: frame.as_mut_ptr().cast(),
                iov_len: frame.len(),
            };
            // SAFETY: msghdr is plain old data; all-zero is valid.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            // SAFETY: msg points at live buffers of the sizes it gives.
            let n = unsafe { libc::recvmsg(self.0.as_raw_fd(), &raw mut msg, 0) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                return match err.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => {
                        Ok(None)
                    }
                    _ => Err(err).context("recvmsg"),
                };
            }
            // SAFETY: walking the control messages the kernel wrote into `msg`.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET
                        && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                    {
                        let ts: libc::timespec =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                        let stamp = UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                        return Ok(Some((n as usize, stamp)));
                    }
                    cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
                }
            }
            bail!("a frame without a kernel timestamp")
        }
    }

    /// Small and good enough for random phases.
    struct XorShift(u64);

    impl XorShift {
        fn seeded() -> Self {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            Self(nanos | 1)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }
}
