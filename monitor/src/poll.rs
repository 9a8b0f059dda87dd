//! What one poll does with a snapshot once it is read: the detection input and the
//! detectors' findings, then the stats line. The polling loop (`run.rs`) and the
//! `poll_work` benchmark both call this, so the benchmark times what the monitor runs.

use std::time::{Duration, Instant};

use crate::{
    alert::Finding,
    backend::Snapshot,
    detect::{DetectInput, Detector, ScanWindow},
    stats::{self, IntervalStats},
};

/// The per-poll work's state: the scan window, and what one poll leaves for the rest
/// of it (the detection input, which alerts' traffic figures are read from).
#[derive(Debug)]
pub struct PollWork {
    scans: ScanWindow,
    /// Sources in the stats line.
    top: usize,
    /// Rates are compared over at least this long (`run::RATE_WINDOW`).
    rate_window: Duration,
    input: DetectInput,
}

impl PollWork {
    /// `started`: when the first snapshot was taken (the first scan epoch starts then).
    pub fn new(scan_window: Duration, started: Instant, top: usize, rate_window: Duration) -> Self {
        Self {
            scans: ScanWindow::new(scan_window, started),
            top,
            rate_window,
            input: DetectInput::default(),
        }
    }

    /// Runs the detectors over the window from `window_start` to `current`; `last` is
    /// the snapshot the previous poll read (what "for how long" checks advance from).
    /// Returns the findings, and the scan epoch the backend is to start, when one is
    /// due.
    pub fn detect(
        &mut self,
        detector: &mut Detector,
        window_start: &Snapshot,
        last: &Snapshot,
        current: &Snapshot,
    ) -> (Vec<Finding>, Option<u64>) {
        let mut input = DetectInput::from_snapshots(window_start, current);
        // Less than a window since start: what came before counts as silence.
        input.interval_secs = input.interval_secs.max(self.rate_window.as_secs_f64());
        input.elapsed_secs = current.taken.duration_since(last.taken).as_secs_f64();
        input.scans = self.scans.estimates(&current.sources);
        let epoch = self.scans.advance(&current.sources, current.taken);
        let findings = detector.evaluate(&input);
        self.input = input;
        (findings, epoch)
    }

    /// The detection input of the last [`detect`](Self::detect).
    pub fn input(&self) -> &DetectInput {
        &self.input
    }

    /// The stats line from `last` to `current`.
    pub fn interval_stats(&mut self, last: &Snapshot, current: &Snapshot) -> IntervalStats {
        stats::interval(last, current, self.top)
    }
}
