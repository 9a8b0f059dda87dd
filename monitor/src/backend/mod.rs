//! Where the counters come from. Every backend yields the same [`Snapshot`]: the
//! cumulative host-wide counters and per-source counters at one instant.

use std::net::IpAddr;

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
    /// The background tasks the backend runs (its readers), handed over when the run
    /// ends, for the run to cancel and await under its shutdown deadline.
    fn tasks(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
}
