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
}

impl ConnectionScanner {
    /// Starts scanning now and then every `interval`. The thread ends at its next send
    /// after the scanner is dropped.
    pub fn start(interval: Duration) -> Result<Self> {
        // One listing waiting at most: a loop that falls behind gets the newest state,
        // not a backlog.
        let (tx, scans) = mpsc::channel(1);
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
        std::thread::Builder::new()
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
                    std::thread::sleep(interval.saturating_sub(started.elapsed()));
                }
            })?;
        Ok(Self { scans })
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
