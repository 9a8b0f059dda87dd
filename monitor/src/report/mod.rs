//! What the monitor prints: one line per interval and final totals, as human text or
//! as JSON lines on stdout (logs go to stderr, so stdout stays parseable).

use std::time::{Duration, SystemTime};

use monitor_common::GlobalCounters;

use crate::{alert::AlertEvent, capture::CaptureDone, stats::IntervalStats};

pub mod human;
pub mod json;

/// What is being monitored, and how.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub iface: String,
    pub backend: &'static str,
    /// e.g. `xdp (native mode) on eth0`
    pub description: String,
    pub interval: Duration,
}

pub trait Reporter {
    fn start(&mut self, run: &RunInfo);
    fn interval(&mut self, run: &RunInfo, stats: &IntervalStats);
    /// Alerts raised and ended in one interval, in order.
    fn alerts(&mut self, run: &RunInfo, events: &[AlertEvent]);
    /// A triggered capture that ended (written, cut short, or failed).
    fn capture(&mut self, run: &RunInfo, done: &CaptureDone);
    fn finish(&mut self, run: &RunInfo, totals: &GlobalCounters, elapsed: Duration);
}

pub fn reporter(json: bool) -> Box<dyn Reporter + Send> {
    if json {
        Box::new(json::JsonReporter::new(std::io::stdout()))
    } else {
        use std::io::IsTerminal as _;
        let colour = std::io::stdout().is_terminal();
        Box::new(human::HumanReporter::new(std::io::stdout(), colour))
    }
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
