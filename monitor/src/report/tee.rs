//! Several reporters fed the same events: stdout, and the exports and metrics beside it.

use std::time::Duration;

use monitor_common::GlobalCounters;

use super::{Reporter, RunInfo};
use crate::{
    model::{alert::AlertEvent, capture::CaptureDone},
    stats::IntervalStats,
};

pub struct Tee(pub Vec<Box<dyn Reporter + Send>>);

impl Reporter for Tee {
    fn start(&mut self, run: &RunInfo) {
        self.0.iter_mut().for_each(|r| r.start(run));
    }

    fn interval(&mut self, run: &RunInfo, stats: &IntervalStats) {
        self.0.iter_mut().for_each(|r| r.interval(run, stats));
    }

    fn alerts(&mut self, run: &RunInfo, events: &[AlertEvent]) {
        self.0.iter_mut().for_each(|r| r.alerts(run, events));
    }

    fn capture(&mut self, run: &RunInfo, done: &CaptureDone) {
        self.0.iter_mut().for_each(|r| r.capture(run, done));
    }

    fn finish(&mut self, run: &RunInfo, totals: &GlobalCounters, elapsed: Duration) {
        self.0
            .iter_mut()
            .for_each(|r| r.finish(run, totals, elapsed));
    }
}
