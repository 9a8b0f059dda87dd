//! Where the counters come from. Every backend yields the same [`Snapshot`]: the
//! cumulative host-wide counters and per-source counters at one instant.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Result, bail};
use monitor_common::{
    GlobalCounters, SourceCounters,
    counters::{BanEntry, Tally},
};

use crate::{
    capture::{CaptureTarget, CapturedPacket},
    packets::PacketRecord,
};

#[cfg(target_os = "linux")]
mod batch;
pub mod ifstats;
pub mod pcap;
pub mod select;
pub mod software;
pub mod source_list;
#[cfg(target_os = "linux")]
pub mod xdp;

pub use source_list::SourceList;

/// Captured packets waiting for the capture writer, in every backend; more are lost
/// to the capture (counted and logged).
const CAPTURE_QUEUE: usize = 65_536;
/// Packet-log lines waiting for the printer, in every backend; more are counted as
/// skipped.
const PACKET_LOG_QUEUE: usize = 4_096;
/// A followed large flow that has not grown for this long is let go, in every backend.
const QUIET_FLOW: Duration = Duration::from_secs(30);

/// Per-source maps. Their keys are addresses a spoofed flood chooses, so the hasher is
/// seeded at random (foldhash's `RandomState`), but it is not std's SipHash: hashing
/// 65,536 sources into several maps every poll was a fifth of a poll's CPU time.
pub type SourceMap<V> = HashMap<IpAddr, V, foldhash::fast::RandomState>;

/// Cumulative counters since the backend started, read at `taken`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub taken: Instant,
    pub global: GlobalCounters,
    pub sources: SourceList<SourceCounters>,
    /// Traffic to blocklisted destinations, per destination (cumulative).
    pub listed_destinations: HashMap<IpAddr, Tally>,
    /// Flows whose inbound payload reached the large-download threshold, while the
    /// backend still follows them (cumulative).
    pub large_flows: Vec<FlowTotals>,
    /// SYN-ACKs the host sent, per destination (cumulative); `None` when the backend
    /// cannot see egress.
    pub syn_acks_sent: Option<SourceList<u64>>,
    /// Packets the capture lost (libpcap's counters, cumulative); `None` for a backend
    /// that loses none (XDP counts in the kernel, before any buffer).
    pub capture_drops: Option<CaptureDrops>,
    /// Frames mitigation dropped (in dry-run: would have), per source (cumulative);
    /// empty when mitigation is off.
    pub dropped: HashMap<IpAddr, Tally>,
}

/// libpcap's `ps_drop` and `ps_ifdrop`: packets dropped because the capture buffer was
/// full, and by the interface or its driver, since the capture started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureDrops {
    pub dropped: u64,
    pub if_dropped: u64,
}

/// One flow's inbound payload, as followed by the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTotals {
    /// IP protocol number: 6 TCP, 17 UDP.
    pub protocol: u8,
    /// The sender of the payload (the remote side) and the receiver (this host).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload_bytes: u64,
    pub packets: u64,
    pub first_seen: SystemTime,
    /// When the backend last saw the payload grow.
    pub last_grew: SystemTime,
}

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
