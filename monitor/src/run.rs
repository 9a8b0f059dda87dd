//! The polling loop: snapshot the backend every interval, report the stats, run the
//! detectors and report their alerts, on stdout and to the sinks (log files, webhooks:
//! queued, never waited for); stop on a signal or at `--duration`, then report the
//! alerts still open and the final totals, and give the sinks a few seconds to deliver
//! what is queued.

use std::{
    collections::VecDeque,
    io::Write as _,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use log::{debug, warn};
use tokio::{
    sync::{Notify, mpsc::Receiver},
    time::{MissedTickBehavior, interval_at, sleep_until},
};

use crate::{
    alert::{AlertEvent, AlertSource, AlertTracker},
    backend::{Backend, Snapshot},
    capture::Captures,
    cli::Cli,
    config::Config,
    connections::{self, ConnectionScanner},
    detect::{DetectInput, Detector, Lists},
    iface,
    mitigate::Mitigation,
    packets::{self, PacketRecord, RateCap},
    poll::PollWork,
    report::{self, RunInfo},
    sink::{self, Delivery, Origin, Traffic},
};

/// Detectors compare rates over at least this long. With short intervals a burst that
/// lands in one of them (a fast 5 MB download in 250 ms) would read as four times its
/// per-second rate; a real flood still crosses its threshold in its first interval.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

pub async fn run(cli: Cli) -> Result<()> {
    if cli.tui {
        crate::tui::check_terminal()?;
    }
    let config = cli.config().context("invalid configuration")?;
    let lists = Lists::load(&config.lists).context("invalid address list")?;
    let iface = match &config.capture.iface {
        Some(name) => name.clone(),
        None => iface::default_route()?,
    };
    // The log files are opened before the program is attached: a wrong path stops the
    // monitor before it touches the interface.
    let origin = Origin {
        server_name: config
            .alerting
            .server_name
            .clone()
            .unwrap_or_else(sink::hostname),
        iface: iface.clone(),
    };
    let delivery =
        Delivery::start(&config.alerting, origin).context("failed to set up alert delivery")?;
    // The export file and the metrics port too: a wrong path or a taken port stops the
    // monitor before it attaches.
    let mut extra: Vec<Box<dyn report::Reporter + Send>> = Vec::new();
    if let Some(path) = &config.export.path {
        extra.push(Box::new(crate::export::Exporter::open(path)?));
    }
    let _metrics_server = match config.metrics.listen {
        Some(addr) => {
            let metrics = crate::metrics::Metrics::new(Some(delivery.stats_source()));
            let server = crate::metrics::server::MetricsServer::bind(addr, metrics.clone()).await?;
            extra.push(Box::new(metrics));
            Some(server)
        }
        None => None,
    };
    let backend = open_backend(&cli, &config, &lists, &iface)?;
    if let Some(filter) = &cli.filter {
        log::info!("counting only packets that match `{filter}`");
    }
    let mitigation = Mitigation::start(&config, &lists, &iface, backend.as_ref())?;
    let info = RunInfo {
        iface: iface.clone(),
        backend: backend.name(),
        description: backend.describe(),
        interval: config.capture.interval,
        mitigation: config.mitigate.mode,
    };
    let detector = Detector::new(&config, lists, iface);
    // Notified when the dashboard's operator quits.
    let quit = Arc::new(Notify::new());
    let mut reporter: Box<dyn report::Reporter + Send> = if cli.tui {
        let filter = cli.filter.as_ref().map(ToString::to_string);
        Box::new(crate::tui::start(
            filter,
            config.alerting.color,
            quit.clone(),
        )?)
    } else {
        report::reporter(cli.json, config.alerting.color)
    };
    if !extra.is_empty() {
        extra.insert(0, reporter);
        reporter = Box::new(report::tee::Tee(extra));
    }
    let polled = poll(
        backend, &cli, &config, &info, detector, reporter, &delivery, mitigation, &quit,
    )
    .await;
    delivery.shutdown().await;
    polled
}

/// What an alert's source sent in the interval: its own rates, or the host's for
/// `many`. None for a source that sent nothing in it.
fn traffic(input: &DetectInput, source: AlertSource) -> Option<Traffic> {
    if input.interval_secs <= 0.0 {
        return None;
    }
    let (packets, bytes) = match source {
        AlertSource::Ip(ip) => input.sources.get(&ip).map(|c| (c.packets, c.bytes))?,
        AlertSource::Many => (input.host.total.packets, input.host.total.bytes),
        AlertSource::Process(_) => return None,
    };
    Some(Traffic {
        pps: packets as f64 / input.interval_secs,
        bits_per_sec: bytes as f64 * 8.0 / input.interval_secs,
    })
}

/// The backend `--backend` names (`auto`: the best this host allows).
fn open_backend(
    cli: &Cli,
    config: &Config,
    lists: &Lists,
    iface: &str,
) -> Result<Box<dyn Backend + Send>> {
    crate::backend::select::open(cli, config, lists, iface)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the loop's parts, each built in `run`"
)]
async fn poll(
    mut backend: Box<dyn Backend + Send>,
    cli: &Cli,
    config: &Config,
    info: &RunInfo,
    mut detector: Detector,
    mut reporter: Box<dyn report::Reporter + Send>,
    delivery: &Delivery,
    mut mitigation: Option<Mitigation>,
    quit: &Notify,
) -> Result<()> {
    let mut stop = StopSignals::watch()?;
    let interval = config.capture.interval;
    let mut tracker = AlertTracker::new(&config.alerting);
    // The connection monitor's alerts have their own tracker: each of its scans is a
    // whole "interval" for them (what a scan does not find again has cleared), and
    // the packet intervals in between say nothing about them.
    let mut connection_tracker = AlertTracker::new(&config.alerting);
    let mut scanner = match config.connections.enabled {
        true => Some(
            ConnectionScanner::start(config.connections.interval)
                .context("failed to start the connection monitor")?,
        ),
        false => None,
    };
    let first: Snapshot = backend.snapshot()?;
    let started = first.taken;
    let mut work = PollWork::new(
        config.detection.port_scan.window,
        started,
        config.capture.top,
        RATE_WINDOW,
    );
    // Recent snapshots, oldest first: the last one for the stats line, the newest one
    // at least RATE_WINDOW old for detection.
    let mut recent: VecDeque<Snapshot> = VecDeque::from([first]);
    let mut captures = Captures::start(&config.pcap, backend.as_mut());
    let mut capture_failures = CaptureFailures::default();
    let deadline = cli.duration.map(|d| started + d);
    let mut ticker = interval_at((started + interval).into(), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut packet_log = PacketLog::start(cli, config, backend.as_mut());
    reporter.start(info);

    loop {
        tokio::select! {
            // In this order: a tick due at the deadline is still reported.
            biased;
            _ = ticker.tick() => match (Instant::now(), backend.snapshot()) {
                (cycle_started, Ok(current)) => {
                    let read = cycle_started.elapsed();
                    // Ticks jitter: a snapshot 0.999 s old is a 1 s window, not too short
                    // (taking the one before would halve a new flood's rate at 1 s).
                    let window = RATE_WINDOW.saturating_sub(interval / 2);
                    let window_start = recent
                        .iter()
                        .rev()
                        .find(|s| current.taken.duration_since(s.taken) >= window)
                        .unwrap_or(&recent[0]);
                    let last = recent.back().unwrap_or(&current);
                    let (findings, epoch) =
                        work.detect(&mut detector, window_start, last, &current);
                    if let Some(epoch) = epoch
                        && let Err(err) = backend.set_scan_epoch(epoch)
                    {
                        warn!("failed to start scan epoch {epoch}: {err:#}");
                    }
                    let input = work.input();
                    // Alerts first: they are what someone is waiting for.
                    let mitigated = match &mut mitigation {
                        Some(m) => m.on_findings(&findings, backend.as_mut(), SystemTime::now()),
                        None => Vec::new(),
                    };
                    let events = tracker.update(findings, SystemTime::now());
                    reporter.alerts(info, &events);
                    for event in &events {
                        let source_traffic = match event {
                            AlertEvent::Alert(a) => traffic(input, a.source),
                            _ => None,
                        };
                        delivery.alert(event, source_traffic);
                    }
                    report_mitigation(reporter.as_mut(), delivery, info, &mitigated);
                    if let Some(captures) = &mut captures {
                        captures.on_alerts(&events, backend.as_mut(), Instant::now());
                        for done in captures.finished(backend.as_mut()) {
                            let failures = &mut capture_failures;
                            report_capture(reporter.as_mut(), delivery, info, &done, failures);
                        }
                    }
                    let last = recent.back().unwrap_or(&current);
                    reporter.interval(info, &work.interval_stats(last, &current));
                    if let Some(log) = &mut packet_log {
                        log.report_skipped(backend.as_mut(), false);
                    }
                    // For the scale benchmark (`RUST_LOG=monitor::run=debug`).
                    debug!(
                        "poll cycle: {:.1} ms, {} sources (read {:.1} ms)",
                        cycle_started.elapsed().as_secs_f64() * 1e3,
                        current.sources.len(),
                        read.as_secs_f64() * 1e3
                    );
                    recent.push_back(current);
                    // Keep only what the next poll may start its window at: a snapshot
                    // whose successor will be a window old by then (ticks may come up
                    // to half an interval early) is not needed. At the default 1 s
                    // interval only the newest stays: under a flood each is ~17 MB.
                    let newest = recent.back().map(|s| s.taken).unwrap_or(started);
                    while recent.len() > 1
                        && newest.duration_since(recent[1].taken) + interval / 2 >= window
                    {
                        if let Some(old) = recent.pop_front() {
                            backend.recycle(old);
                        }
                    }
                }
                // Keep going: the next poll may work, and the totals are cumulative.
                (_, Err(err)) => warn!("failed to read the counters: {err:#}"),
            },
            Some(record) = async { packet_log.as_mut()?.records.recv().await },
                if packet_log.is_some() => {
                if let Some(log) = &mut packet_log {
                    log.print(&record);
                }
            }
            _ = quit.notified() => break,
            scan = connections::next_scan(&mut scanner) => match scan {
                Ok(listing) => {
                    let findings =
                        connections::evaluate(&listing, detector.lists(), &config.connections);
                    let events = connection_tracker.update(findings, SystemTime::now());
                    reporter.alerts(info, &events);
                    for event in &events {
                        delivery.alert(event, None);
                    }
                    if let Some(captures) = &mut captures {
                        captures.on_alerts(&events, backend.as_mut(), Instant::now());
                    }
                }
                Err(err) => warn!("connection monitor: failed to list the sockets: {err:#}"),
            },
            request = async {
                match &mut mitigation {
                    Some(m) => m.request().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(m) = &mut mitigation {
                    let events = m.on_request(request, backend.as_mut(), SystemTime::now());
                    report_mitigation(reporter.as_mut(), delivery, info, &events);
                }
            }
            _ = stop.received() => break,
            _ = async { sleep_until(deadline.unwrap_or_else(Instant::now).into()).await },
                if deadline.is_some() => break,
        }
    }

    // Read once more so that the final totals include the last partial interval; if
    // that fails, the last good snapshot is still reported.
    let last = match backend.snapshot() {
        Ok(last) => last,
        Err(err) => {
            warn!("failed to read the final counters, reporting the last good ones: {err:#}");
            recent.pop_back().expect("at least the first snapshot")
        }
    };
    if let Some(captures) = captures {
        for done in captures.shutdown(backend.as_mut()).await {
            report_capture(
                reporter.as_mut(),
                delivery,
                info,
                &done,
                &mut capture_failures,
            );
        }
    }
    if let Some(log) = &mut packet_log {
        log.drain();
        log.report_skipped(backend.as_mut(), true);
    }
    let tasks = backend.shutdown();
    drop(backend); // detaches the program before we report
    join_backend_tasks(tasks).await;
    if let Some(m) = mitigation {
        let ended = m.finish(SystemTime::now());
        report_mitigation(reporter.as_mut(), delivery, info, &ended);
    }
    let now = SystemTime::now();
    let mut closing = tracker.finish(now);
    closing.extend(connection_tracker.finish(now));
    reporter.alerts(info, &closing);
    for event in &closing {
        delivery.alert(event, None);
    }
    reporter.finish(info, &last.global, last.taken.duration_since(started));
    Ok(())
}

/// How long the backend's tasks and threads get to stop, all together.
const BACKEND_TASKS_DEADLINE: Duration = Duration::from_secs(1);

/// Awaits the tasks `Backend::shutdown` handed over, until BACKEND_TASKS_DEADLINE;
/// aborts those still running then.
async fn join_backend_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + BACKEND_TASKS_DEADLINE;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            debug!("a backend task did not stop within {BACKEND_TASKS_DEADLINE:?}; aborted");
        }
    }
}

/// SIGINT and SIGTERM on Unix; Ctrl-C elsewhere (Windows).
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    #[cfg(unix)]
    fn watch() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("failed to watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("failed to watch SIGTERM")?,
        })
    }

    #[cfg(not(unix))]
    fn watch() -> Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn received(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn received(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The capture errors already logged. An unwritable capture directory fails every
/// capture the same way; the log says so once, not once per alert.
#[derive(Default)]
struct CaptureFailures(std::collections::HashSet<String>);

impl CaptureFailures {
    /// Whether this error (its capture's own file name aside) is new.
    fn first(&mut self, error: &str, path: &std::path::Path) -> bool {
        let file = path.display().to_string();
        self.0.insert(error.replace(&file, "<file>"))
    }
}

/// Bans and unbans go where alerts go.
fn report_mitigation(
    reporter: &mut (dyn report::Reporter + Send),
    delivery: &Delivery,
    info: &RunInfo,
    events: &[AlertEvent],
) {
    if events.is_empty() {
        return;
    }
    reporter.alerts(info, events);
    for event in events {
        delivery.alert(event, None);
    }
}

/// A capture that ended goes to stdout, and a written one to the sinks as a note
/// (Discord gets a follow-up naming the file, as predecessor 004 did).
fn report_capture(
    reporter: &mut (dyn report::Reporter + Send),
    delivery: &Delivery,
    info: &RunInfo,
    done: &crate::capture::CaptureDone,
    failures: &mut CaptureFailures,
) {
    reporter.capture(info, done);
    if let Some(error) = &done.error {
        if failures.first(error, &done.path) {
            warn!(
                "capture of {} ({}) stopped after {} packets: {error}; monitoring goes on \
                 (further captures failing this way are reported on stdout, not logged again)",
                done.source,
                done.kind.as_str(),
                done.packets
            );
        } else {
            debug!(
                "capture of {} ({}) stopped after {} packets: {error}",
                done.source,
                done.kind.as_str(),
                done.packets
            );
        }
    } else {
        let source = done.target.map_or(AlertSource::Many, AlertSource::Ip);
        delivery.capture_written(done.kind, source, &done.path, done.packets);
    }
}

/// `--packets`: the backend's records, printed within the rate cap, with what was
/// skipped reported every few seconds (when it grew) and at the end.
struct PacketLog {
    records: Receiver<PacketRecord>,
    cap: RateCap,
    colour: bool,
    /// Skipped lines last reported, and when.
    reported: (u64, Instant),
}

/// How often a growing skipped count is reported.
const SKIPPED_EVERY: Duration = Duration::from_secs(5);

impl PacketLog {
    fn start(cli: &Cli, config: &Config, backend: &mut (dyn Backend + Send)) -> Option<Self> {
        if !cli.packets {
            return None;
        }
        let Some(records) = backend.packet_log() else {
            warn!(
                "the {} backend cannot log packets; --packets is off",
                backend.name()
            );
            return None;
        };
        use std::io::IsTerminal as _;
        let colour = report::use_colour(
            config.alerting.color,
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        Some(Self {
            records,
            cap: RateCap::new(cli.packets_rate),
            colour,
            reported: (0, Instant::now()),
        })
    }

    fn print(&mut self, record: &PacketRecord) {
        if self.cap.admit(record.timestamp) {
            emit(&packets::format_line(record, self.colour));
        }
    }

    /// Prints what is already queued (the last packets before the stop).
    fn drain(&mut self) {
        while let Ok(record) = self.records.try_recv() {
            self.print(&record);
        }
    }

    fn report_skipped(&mut self, backend: &mut (dyn Backend + Send), end: bool) {
        let backend_skipped = backend.packet_log_skipped();
        let total = self.cap.skipped + backend_skipped;
        let due = total > self.reported.0 && self.reported.1.elapsed() >= SKIPPED_EVERY;
        if end || due {
            emit(&packets::skipped_line(
                self.cap.skipped,
                backend_skipped,
                end,
            ));
            self.reported = (total, Instant::now());
        }
    }
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        log::error!("failed to write to stdout: {err}");
    }
}
