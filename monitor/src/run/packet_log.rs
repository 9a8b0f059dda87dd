//! `--packets`: the backend's packet records printed within the rate cap.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use log::warn;
use tokio::sync::mpsc::Receiver;

use crate::{
    backend::Backend, config::Config, model::packet::PacketRecord, packets, packets::RateCap,
    report,
};

/// `--packets` (at most `rate` lines a second): the backend's records, printed within
/// the rate cap, with what was skipped reported every few seconds (when it grew) and at
/// the end. The records' stream is the polling loop's to wait on.
pub(super) struct PacketLog {
    cap: RateCap,
    colour: bool,
    /// Skipped lines last reported, and when.
    reported: (u64, Instant),
}

/// How often a growing skipped count is reported.
const SKIPPED_EVERY: Duration = Duration::from_secs(5);

impl PacketLog {
    pub(super) fn start(
        rate: Option<u32>,
        config: &Config,
        backend: &mut (dyn Backend + Send),
    ) -> Option<(Self, Receiver<PacketRecord>)> {
        let rate = rate?;
        let Some(records) = backend.packet_log() else {
            warn!(
                "the {} backend cannot log packets; --packets is off",
                backend.name()
            );
            return None;
        };
        let colour = report::use_colour(
            config.alerting.color,
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        let log = Self {
            cap: RateCap::new(rate),
            colour,
            reported: (0, Instant::now()),
        };
        Some((log, records))
    }

    pub(super) fn print(&mut self, record: &PacketRecord) {
        if self.cap.admit(record.timestamp) {
            print_line(&packets::format_line(record, self.colour));
        }
    }

    /// Prints what is already queued (the last packets before the stop).
    pub(super) fn drain(&mut self, records: &mut Receiver<PacketRecord>) {
        while let Ok(record) = records.try_recv() {
            self.print(&record);
        }
    }

    pub(super) fn report_skipped(&mut self, backend: &mut (dyn Backend + Send), end: bool) {
        let backend_skipped = backend.packet_log_skipped();
        let total = self.cap.skipped + backend_skipped;
        let due = total > self.reported.0 && self.reported.1.elapsed() >= SKIPPED_EVERY;
        if end || due {
            print_line(&packets::skipped_line(
                self.cap.skipped,
                backend_skipped,
                end,
            ));
            self.reported = (total, Instant::now());
        }
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        log::error!("failed to write to stdout: {err}");
    }
}
