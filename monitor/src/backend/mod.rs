//! Where the counters come from. Every backend yields the same [`Snapshot`]: the
//! cumulative host-wide counters and per-source counters at one instant.

use std::{net::IpAddr, time::Duration};

use anyhow::{Result, bail};
use monitor_common::counters::BanEntry;

use crate::model::{
    capture::{CaptureTarget, CapturedPacket},
    packet::PacketRecord,
    snapshot::Snapshot,
};

#[cfg(target_os = "linux")]
mod batch;
pub mod ifstats;
pub mod pcap;
pub mod select;
pub mod software;
#[cfg(target_os = "linux")]
pub mod xdp;

/// Captured packets waiting for the capture writer, in every backend; more are lost
/// to the capture (counted and logged).
const CAPTURE_QUEUE: usize = 65_536;
/// Packet-log lines waiting for the printer, in every backend; more are counted as
/// skipped.
const PACKET_LOG_QUEUE: usize = 4_096;
/// A followed large flow that has not grown for this long is let go, in every backend.
const QUIET_FLOW: Duration = Duration::from_secs(30);

pub trait Backend {
    /// Short name for reports: `xdp`, `pcap`, `ifstats`.
    fn name(&self) -> &'static str;
    /// How it runs, for the log and the final report, e.g. `xdp (native mode)`.
    fn describe(&self) -> String;
    fn snapshot(&mut self) -> Result<Snapshot>;
    /// Takes back a snapshot the polling loop no longer needs, so that the next one
    /// may reuse its memory (under a flood its per-source map is megabytes).
    fn recycle(&mut self, _old: Snapshot) {}
    /// Starts a new scan epoch: per-source scan sketches restart from empty.
    fn set_scan_epoch(&mut self, epoch: u64) -> Result<()>;
    /// Starts copying `target`'s packets (every packet for `None`) as capture `id`.
    fn arm_capture(&mut self, id: u32, target: CaptureTarget) -> Result<()>;
    fn disarm_capture(&mut self, target: CaptureTarget) -> Result<()>;
    /// The stream of captured packets; `None` when the backend cannot capture. Called
    /// once, from within the async runtime.
    fn captured_packets(&mut self) -> Option<tokio::sync::mpsc::Receiver<CapturedPacket>>;
    /// Whether the backend can drop packets (`--mitigate`).
    fn can_mitigate(&self) -> bool {
        false
    }
    /// Drops (or in dry-run counts) `source`'s packets from now on.
    fn ban(&mut self, source: IpAddr, _entry: BanEntry) -> Result<()> {
        bail!("the {} backend cannot ban {source}", self.name())
    }
    fn unban(&mut self, source: IpAddr) -> Result<()> {
        bail!("the {} backend cannot unban {source}", self.name())
    }
    /// The packet log (`--packets`): one record per packet that passes the filter,
    /// within the backend's own rate cap; `None` when the log is off or the backend
    /// cannot log packets. Called once, from within the async runtime.
    fn packet_log(&mut self) -> Option<tokio::sync::mpsc::Receiver<PacketRecord>> {
        None
    }
    /// Packets the backend left out of the log (its rate cap, its full buffers),
    /// cumulative.
    fn packet_log_skipped(&mut self) -> u64 {
        0
    }
    /// Tells every task and thread the backend started to stop, and hands over their
    /// handles: the caller awaits them under its deadline and aborts whatever is still
    /// running at it. The streams (`captured_packets`, `packet_log`) end with them, so
    /// it comes after their last reads. Called once, from within the async runtime.
    fn shutdown(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
}
