//! Where the counters come from. Every backend yields the same [`Snapshot`]: the
//! cumulative host-wide counters and per-source counters at one instant.

use std::{collections::HashMap, net::IpAddr, time::Instant};

use anyhow::Result;
use monitor_common::{GlobalCounters, SourceCounters};

#[cfg(target_os = "linux")]
pub mod xdp;

/// Cumulative counters since the backend started, read at `taken`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub taken: Instant,
    pub global: GlobalCounters,
    pub sources: HashMap<IpAddr, SourceCounters>,
}

pub trait Backend {
    /// Short name for reports: `xdp`, later `pcap`, `ifstats`.
    fn name(&self) -> &'static str;
    /// How it runs, for the log and the final report, e.g. `xdp (native mode)`.
    fn describe(&self) -> String;
    fn snapshot(&mut self) -> Result<Snapshot>;
}
