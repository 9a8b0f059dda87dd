//! The scan off the polling loop: a thread lists the sockets every interval and sends
//! each listing through a channel, which the loop awaits among its other events. A
//! slow scan (thousands of processes) therefore never delays a poll of the counters.
//!
//! A plain thread rather than a blocking tokio task: the runtime waits for its blocking
//! tasks on shutdown, and a scan sleeping out its interval would hold up the exit.

use std::time::{Duration, Instant};

use anyhow::Result;
use log::{debug, warn};
use tokio::sync::mpsc;

use super::list_sockets;
use crate::model::connection::Listing;

pub struct ConnectionScanner {
    scans: mpsc::Receiver<Result<Listing>>,
    /// Dropped to stop the thread at once, even in the middle of its wait.
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ConnectionScanner {
    /// Starts scanning now and then every `interval`. The thread ends when the scanner
    /// is shut down or dropped (within a scan, if one is under way).
    pub fn start(interval: Duration) -> Result<Self> {
        // One listing waiting at most: a loop that falls behind gets the newest state,
        // not a backlog.
        let (tx, scans) = mpsc::channel(1);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let mut warned = false;
        if let Some(missing) = super::missing_rights() {
            warned = true;
            warn!(
                "connection monitor: without root or {missing}, other users' processes are \
                 not seen: their sockets are listed without a process, so \
                 blocklisted_connection names no pid for them and excessive_connections \
                 does not count them"
            );
        }
        let thread = std::thread::Builder::new()
            .name("connections".into())
            .spawn(move || {
                loop {
                    let started = Instant::now();
                    let listing = list_sockets();
                    let took = started.elapsed();
                    if let Ok(listing) = &listing {
                        debug!(
                            "connection scan: {} sockets, {} processes named, in {:.1} ms",
                            listing.sockets.len(),
                            listing.names.len(),
                            took.as_secs_f64() * 1e3
                        );
                        if listing.unreadable_processes > 0 && !warned {
                            warned = true;
                            warn!(
                                "connection monitor: the open files of {} processes cannot be read \
                                 (another user's; run as root, or grant CAP_SYS_PTRACE and \
                                 CAP_DAC_READ_SEARCH): their sockets are seen without a process, so \
                                 blocklisted_connection names no pid for them and \
                                 excessive_connections does not count them",
                                listing.unreadable_processes
                            );
                        }
                    }
                    if tx.blocking_send(listing).is_err() {
                        break;
                    }
                    let wait = interval.saturating_sub(started.elapsed());
                    match stopped.recv_timeout(wait) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        // The scanner is gone.
                        _ => break,
                    }
                }
            })?;
        Ok(Self {
            scans,
            stop,
            thread,
        })
    }

    /// Stops the thread and hands over a task that joins it, for the run to await under
    /// its shutdown deadline.
    pub fn shutdown(self) -> tokio::task::JoinHandle<()> {
        let Self {
            scans,
            stop,
            thread,
        } = self;
        drop((scans, stop));
        tokio::task::spawn_blocking(move || {
            let _ = thread.join();
        })
    }

    /// The next listing (or the error of a failed scan).
    pub async fn next(&mut self) -> Option<Result<Listing>> {
        self.scans.recv().await
    }
}

/// The next listing of `scanner`; never, without one (the monitor is off) or once its
/// thread is gone.
pub async fn next_scan(scanner: &mut Option<ConnectionScanner>) -> Result<Listing> {
    if let Some(scanner) = scanner
        && let Some(scan) = scanner.next().await
    {
        return scan;
    }
    std::future::pending().await
}
