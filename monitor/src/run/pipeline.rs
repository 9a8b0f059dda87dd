//! The running monitor as one value: the backend, the stages that decide and the
//! outputs, with one method per event the loop waits for (a tick, a packet record, a
//! connection scan, an operator's request) and one `emit` through which
//! every event reaches stdout and the sinks.

use std::{
    collections::VecDeque,
    time::{Instant, SystemTime},
};

use anyhow::Result;
use log::{debug, warn};
use tokio::sync::mpsc::Receiver;

use super::{captures::Captures, mitigation::Mitigation, packet_log::PacketLog, tasks::Tasks};
use crate::{
    alert::AlertTracker,
    backend::Backend,
    config::Config,
    connections,
    control::{ControlRequest, ControlSocket},
    delivery::Delivery,
    detect::{DetectInput, Detector},
    model::{
        alert::{AlertEvent, AlertSource},
        capture::CaptureDone,
        connection::Listing,
        packet::PacketRecord,
        snapshot::Snapshot,
    },
    poll::{PollWork, RATE_WINDOW},
    report::{Reporter, RunInfo},
    sink::Traffic,
};

/// What the polling loop waits on besides the ticks and the scans, each in its own
/// branch: the records of `--packets`, and the operator's control socket.
pub(super) struct Inputs {
    pub packets: Option<Receiver<PacketRecord>>,
    pub control: Option<ControlSocket>,
}

/// The parts of a pipeline, each built in `run`.
pub(super) struct Parts<'a> {
    pub backend: Box<dyn Backend + Send>,
    pub config: &'a Config,
    pub info: RunInfo,
    pub detector: Detector,
    pub reporter: Box<dyn Reporter + Send>,
    pub delivery: &'a Delivery,
    /// With its control socket.
    pub mitigation: Option<(Mitigation, ControlSocket)>,
    /// `--packets`: at most this many lines a second.
    pub packet_log_rate: Option<u32>,
}

pub(super) struct Pipeline<'a> {
    backend: Box<dyn Backend + Send>,
    config: &'a Config,
    info: RunInfo,
    detector: Detector,
    reporter: Box<dyn Reporter + Send>,
    delivery: &'a Delivery,
    mitigation: Option<Mitigation>,
    tracker: AlertTracker,
    /// The connection monitor's alerts have their own tracker: each of its scans is a
    /// whole "interval" for them (what a scan does not find again has cleared), and
    /// the packet intervals in between say nothing about them.
    connection_tracker: AlertTracker,
    work: PollWork,
    /// Recent snapshots, oldest first: the last one for the stats line, the newest one
    /// at least `RATE_WINDOW` old for detection.
    recent: VecDeque<Snapshot>,
    started: Instant,
    captures: Option<Captures>,
    capture_failures: CaptureFailures,
    packet_log: Option<PacketLog>,
}

impl<'a> Pipeline<'a> {
    /// Takes the first snapshot, starts captures and the packet log, and reports the
    /// start; the inputs are the polling loop's to wait on.
    pub(super) fn start(parts: Parts<'a>) -> Result<(Self, Inputs)> {
        let Parts {
            mut backend,
            config,
            info,
            detector,
            mut reporter,
            delivery,
            mitigation,
            packet_log_rate,
        } = parts;
        let first: Snapshot = backend.snapshot()?;
        let started = first.taken;
        let work = PollWork::new(
            config.detection.port_scan.window,
            started,
            config.capture.top,
            RATE_WINDOW,
        );
        let captures = Captures::start(&config.pcap, backend.as_mut());
        let (packet_log, packets) =
            PacketLog::start(packet_log_rate, config, backend.as_mut()).unzip();
        let (mitigation, control) = mitigation.unzip();
        reporter.start(&info);
        let pipeline = Self {
            backend,
            config,
            info,
            detector,
            reporter,
            delivery,
            mitigation,
            tracker: AlertTracker::new(&config.alerting),
            connection_tracker: AlertTracker::new(&config.alerting),
            work,
            recent: VecDeque::from([first]),
            started,
            captures,
            capture_failures: CaptureFailures::default(),
            packet_log,
        };
        Ok((pipeline, Inputs { packets, control }))
    }

    /// When the first snapshot was taken: the run's start.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// One interval: read the counters, detect, alert, mitigate, capture, report.
    pub(super) fn on_tick(&mut self) {
        let cycle_started = Instant::now();
        let current = match self.backend.snapshot() {
            Ok(current) => current,
            // Keep going: the next poll may work, and the totals are cumulative.
            Err(err) => {
                warn!("failed to read the counters: {err:#}");
                return;
            }
        };
        let read = cycle_started.elapsed();
        let interval = self.config.capture.interval;
        // Ticks jitter: a snapshot 0.999 s old is a 1 s window, not too short
        // (taking the one before would halve a new flood's rate at 1 s).
        let window = RATE_WINDOW.saturating_sub(interval / 2);
        let window_start = self
            .recent
            .iter()
            .rev()
            .find(|s| current.taken.duration_since(s.taken) >= window)
            .unwrap_or(&self.recent[0]);
        let last = self.recent.back().unwrap_or(&current);
        let (findings, epoch) = self
            .work
            .detect(&mut self.detector, window_start, last, &current);
        if let Some(epoch) = epoch
            && let Err(err) = self.backend.set_scan_epoch(epoch)
        {
            warn!("failed to start scan epoch {epoch}: {err:#}");
        }
        // Alerts first: they are what someone is waiting for.
        let mitigated = match &mut self.mitigation {
            Some(m) => m.on_findings(&findings, self.backend.as_mut(), SystemTime::now()),
            None => Vec::new(),
        };
        let events = self.tracker.update(findings, SystemTime::now());
        let input = self.work.input();
        emit(
            self.reporter.as_mut(),
            self.delivery,
            &self.info,
            &events,
            Some(input),
        );
        self.emit(&mitigated);
        self.capture(&events);
        self.finished_captures();
        let last = self.recent.back().unwrap_or(&current);
        self.reporter
            .interval(&self.info, &self.work.interval_stats(last, &current));
        if let Some(log) = &mut self.packet_log {
            log.report_skipped(self.backend.as_mut(), false);
        }
        // For the scale benchmark (`RUST_LOG=monitor::run=debug`).
        debug!(
            "poll cycle: {:.1} ms, {} sources (read {:.1} ms)",
            cycle_started.elapsed().as_secs_f64() * 1e3,
            current.sources.len(),
            read.as_secs_f64() * 1e3
        );
        self.recent.push_back(current);
        // Keep only what the next poll may start its window at: a snapshot whose
        // successor will be a window old by then (ticks may come up to half an interval
        // early) is not needed. At the default 1 s interval only the newest stays: under
        // a flood each is ~17 MB.
        let newest = self.recent.back().map_or(self.started, |s| s.taken);
        while self.recent.len() > 1
            && newest.duration_since(self.recent[1].taken) + interval / 2 >= window
        {
            if let Some(old) = self.recent.pop_front() {
                self.backend.recycle(old);
            }
        }
    }

    pub(super) fn on_packet(&mut self, record: &PacketRecord) {
        if let Some(log) = &mut self.packet_log {
            log.print(record);
        }
    }

    /// One scan of the host's sockets by the connection monitor.
    pub(super) fn on_scan(&mut self, scan: Result<Listing>) {
        match scan {
            Ok(listing) => {
                let findings = connections::evaluate(
                    &listing,
                    self.detector.lists(),
                    &self.config.connections,
                );
                let events = self.connection_tracker.update(findings, SystemTime::now());
                self.emit(&events);
                self.capture(&events);
            }
            Err(err) => warn!("connection monitor: failed to list the sockets: {err:#}"),
        }
    }

    /// An operator's request on the control socket.
    pub(super) fn on_request(&mut self, request: ControlRequest) {
        if let Some(m) = &mut self.mitigation {
            let events = m.on_request(request, self.backend.as_mut(), SystemTime::now());
            self.emit(&events);
        }
    }

    /// The run ends: the last partial interval, the captures still open, the packet
    /// log's tail, the backend detached (with the tasks it owns handed to `tasks`),
    /// bans and alerts closed, and the final totals.
    pub(super) async fn finish(mut self, inputs: Inputs, tasks: &mut Tasks) {
        let Inputs {
            mut packets,
            control,
        } = inputs;
        // Read once more so that the final totals include the last partial interval; if
        // that fails, the last good snapshot is still reported.
        let last = match self.backend.snapshot() {
            Ok(last) => last,
            Err(err) => {
                warn!("failed to read the final counters, reporting the last good ones: {err:#}");
                self.recent.pop_back().expect("at least the first snapshot")
            }
        };
        if let Some(captures) = self.captures.take() {
            for done in captures.shutdown(self.backend.as_mut(), tasks).await {
                self.report_capture(&done);
            }
        }
        if let (Some(log), Some(records)) = (&mut self.packet_log, &mut packets) {
            log.drain(records);
            log.report_skipped(self.backend.as_mut(), true);
        }
        tasks.own_stopping("a backend task", self.backend.shutdown());
        let Self {
            backend,
            info,
            mut reporter,
            delivery,
            mitigation,
            mut tracker,
            mut connection_tracker,
            started,
            ..
        } = self;
        drop(backend); // detaches the program before we report
        let reporter = reporter.as_mut();
        if let Some(m) = mitigation {
            let ended = m.finish(control, SystemTime::now(), tasks);
            emit(reporter, delivery, &info, &ended, None);
        }
        let now = SystemTime::now();
        let mut closing = tracker.finish(now);
        closing.extend(connection_tracker.finish(now));
        emit(reporter, delivery, &info, &closing, None);
        reporter.finish(&info, &last.global, last.taken.duration_since(started));
    }

    /// Events to stdout and to every sink.
    fn emit(&mut self, events: &[AlertEvent]) {
        emit(
            self.reporter.as_mut(),
            self.delivery,
            &self.info,
            events,
            None,
        );
    }

    /// Starts a capture for each new alert whose source is not already captured.
    fn capture(&mut self, events: &[AlertEvent]) {
        if let Some(captures) = &mut self.captures {
            captures.on_alerts(events, self.backend.as_mut(), Instant::now());
        }
    }

    fn finished_captures(&mut self) {
        let Some(captures) = &mut self.captures else {
            return;
        };
        for done in captures.finished(self.backend.as_mut()) {
            self.report_capture(&done);
        }
    }

    /// A capture that ended goes to stdout, and a written one to the sinks as a note
    /// (Discord gets a follow-up naming the file, as predecessor 004 did).
    fn report_capture(&mut self, done: &CaptureDone) {
        self.reporter.capture(&self.info, done);
        if let Some(error) = &done.error {
            if self.capture_failures.first(error, &done.path) {
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
            self.delivery
                .capture_written(done.kind, source, &done.path, done.packets);
        }
    }
}

/// The one way events leave the pipeline: the reporter (stdout, the dashboard, the
/// export file, the metrics) and then every sink. An alert raised in an interval
/// carries what its source sent in it (`input`), for the webhooks. No events, no
/// call: every reporter does nothing with none.
fn emit(
    reporter: &mut (dyn Reporter + Send),
    delivery: &Delivery,
    info: &RunInfo,
    events: &[AlertEvent],
    input: Option<&DetectInput>,
) {
    if events.is_empty() {
        return;
    }
    reporter.alerts(info, events);
    for event in events {
        let source_traffic = match (event, input) {
            (AlertEvent::Alert(a), Some(input)) => traffic(input, a.source),
            _ => None,
        };
        delivery.alert(event, source_traffic);
    }
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
