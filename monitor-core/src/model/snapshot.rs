//! What every backend yields: a [`Snapshot`], the cumulative host-wide and per-source
//! counters at one instant, and the flows and drops it follows.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::{Instant, SystemTime},
};

use monitor_common::{GlobalCounters, SourceCounters, counters::Tally};

use super::source_list::SourceList;

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
