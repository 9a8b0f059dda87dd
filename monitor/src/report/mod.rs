//! What the monitor prints: one line per interval and final totals, as human text or
//! as JSON lines on stdout (logs go to stderr, so stdout stays parseable).

use std::time::Duration;

use monitor_common::GlobalCounters;

use crate::{
    model::{alert::AlertEvent, capture::CaptureDone},
    stats::IntervalStats,
};

pub mod human;
pub mod json;
pub mod tee;

/// What is being monitored, and how.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub iface: String,
    pub backend: &'static str,
    /// e.g. `xdp (native mode) on eth0`
    pub description: String,
    pub interval: Duration,
    /// Whether dropped counts are drops or, in dry-run, would-be drops.
    pub mitigation: crate::config::MitigateMode,
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

/// The stdout reporter. Human lines are coloured only when `colour` is on
/// (`alerting.color`, off with `--no-color`), stdout is a terminal and `NO_COLOR` is
/// not set.
pub fn reporter(json: bool, colour: bool) -> Box<dyn Reporter + Send> {
    if json {
        Box::new(json::JsonReporter::new(std::io::stdout()))
    } else {
        use std::io::IsTerminal as _;
        let colour = use_colour(
            colour,
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        Box::new(human::HumanReporter::new(std::io::stdout(), colour))
    }
}

/// Colour when asked for, on a terminal, and not refused by a non-empty `NO_COLOR`
/// (no-color.org).
pub fn use_colour(wanted: bool, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    wanted && terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::use_colour;

    #[test]
    fn colour_only_when_wanted_on_a_terminal_without_no_color() {
        assert!(use_colour(true, true, None));
        assert!(use_colour(true, true, Some(OsStr::new(""))));
        assert!(!use_colour(false, true, None), "--no-color");
        assert!(!use_colour(true, false, None), "not a terminal");
        assert!(!use_colour(true, true, Some(OsStr::new("1"))), "NO_COLOR");
    }
}
