//! Triggered capture while the monitor runs: the planner, the writer task and the
//! channels between them and the polling loop; the backend is armed and disarmed here.

use std::time::{Duration, Instant};

use super::tasks::Tasks;
use crate::{
    capture::CapturePlanner,
    capture_writer,
    config::PcapConfig,
    model::capture::{CaptureDone, CaptureStart},
};

/// Triggered capture while the monitor runs: the planner, the writer task and the
/// channels between them and the polling loop.
pub(super) struct Captures {
    planner: CapturePlanner,
    starts: tokio::sync::mpsc::UnboundedSender<CaptureStart>,
    finished: tokio::sync::mpsc::UnboundedReceiver<CaptureDone>,
    writer: tokio::task::JoinHandle<()>,
}

impl Captures {
    /// `None` when captures are off or the backend cannot capture.
    pub(super) fn start(
        config: &PcapConfig,
        backend: &mut dyn crate::backend::Backend,
    ) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let packets = backend.captured_packets()?;
        let (starts, starts_rx) = tokio::sync::mpsc::unbounded_channel();
        let (finished_tx, finished) = tokio::sync::mpsc::unbounded_channel();
        let writer = capture_writer::spawn(
            starts_rx,
            packets,
            finished_tx,
            config.dir.clone(),
            config.max_disk_bytes.get(),
        );
        Some(Self {
            planner: CapturePlanner::new(config),
            starts,
            finished,
            writer,
        })
    }

    /// Starts a capture for each new alert whose source is not already being captured.
    pub(super) fn on_alerts(
        &mut self,
        events: &[crate::model::alert::AlertEvent],
        backend: &mut dyn crate::backend::Backend,
        now: Instant,
    ) {
        for event in events {
            let crate::model::alert::AlertEvent::Alert(alert) = event else {
                continue;
            };
            let Some(start) = self.planner.request(alert, now) else {
                continue;
            };
            // The writer learns of the capture before the kernel starts sending its
            // packets, so none arrives for a capture it does not know yet.
            let _ = self.starts.send(start.clone());
            if let Err(err) = backend.arm_capture(start.id, start.target) {
                log::warn!("cannot capture {}: {err:#}", alert.source);
                self.planner
                    .finished(&CaptureDone::of(&start, 0, 0, Some(format!("{err:#}"))));
                continue;
            }
            log::info!("capturing {} to {}", alert.source, start.path.display());
        }
    }

    /// Captures that ended since the last call; their sources are disarmed.
    pub(super) fn finished(
        &mut self,
        backend: &mut dyn crate::backend::Backend,
    ) -> Vec<CaptureDone> {
        let mut done = Vec::new();
        while let Ok(capture) = self.finished.try_recv() {
            self.retire(&capture, backend);
            done.push(capture);
        }
        done
    }

    fn retire(&mut self, capture: &CaptureDone, backend: &mut dyn crate::backend::Backend) {
        if let Err(err) = backend.disarm_capture(capture.target) {
            log::warn!("cannot stop capturing {}: {err:#}", capture.source);
        }
        self.planner.finished(capture);
    }

    /// Closes the captures still open (their files stay valid) and reports them. A
    /// writer still busy after five seconds (a slow disk) goes to `tasks`, to be ended
    /// with the rest at the shutdown deadline.
    pub(super) async fn shutdown(
        mut self,
        backend: &mut dyn crate::backend::Backend,
        tasks: &mut Tasks,
    ) -> Vec<CaptureDone> {
        // Closing the start channel makes the writer close what is open, then end.
        let (closed, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.starts, closed));
        let ended = tokio::time::timeout(Duration::from_secs(5), &mut self.writer)
            .await
            .is_ok();
        let done = self.finished(backend);
        if !ended {
            tasks.own_stopping("the capture writer", [self.writer]);
        }
        done
    }
}
