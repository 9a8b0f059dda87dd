//! The interface-counter backend: the packets and bytes the interface received, as
//! the operating system counts them. No capture rights at all, and no cost per
//! packet; but no decoding either, so it supports the host-wide pps and bandwidth
//! thresholds and spike detection only (protocols, sources, scans, the blocklist,
//! large downloads and captures need a backend that sees packets).

use std::{collections::HashMap, time::Instant};

use anyhow::{Result, bail};
use monitor_common::{GlobalCounters, counters::Tally};

use super::Backend;
use crate::model::{
    capture::{CaptureTarget, CapturedPacket},
    snapshot::Snapshot,
    source_list::SourceList,
};

/// What the detectors that need more than totals lose on this backend: said once, at
/// start.
pub const UNAVAILABLE: &str = "the ifstats backend sees the interface's packet and byte \
    counters only: host-wide pps and bandwidth thresholds and spike detection work; \
    protocol counts, per-source floods and bursts, SYN and UDP and ICMP floods, port \
    scans, the blocklist, large downloads and triggered captures are unavailable (use \
    --backend pcap or xdp for them)";

/// The interface's received packets and bytes since it came up.
#[cfg(target_os = "linux")]
fn read_counters(iface: &str) -> Result<Tally> {
    use anyhow::Context as _;
    let read = |name: &str| -> Result<u64> {
        let path = format!("/sys/class/net/{iface}/statistics/{name}");
        std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read {path}"))?
            .trim()
            .parse()
            .with_context(|| format!("{path} does not hold a number"))
    };
    Ok(Tally {
        packets: read("rx_packets")?,
        bytes: read("rx_bytes")?,
    })
}

#[cfg(not(target_os = "linux"))]
fn read_counters(iface: &str) -> Result<Tally> {
    let mut networks = sysinfo::Networks::new_with_refreshed_list();
    networks.refresh(true);
    match networks.get(iface) {
        Some(data) => Ok(Tally {
            packets: data.total_packets_received(),
            bytes: data.total_received(),
        }),
        None => bail!(
            "no counters for interface `{iface}`; interfaces with counters: {}",
            networks.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

pub struct IfStatsBackend {
    iface: String,
    /// The interface's counters when the monitor started: totals count from there.
    start: Tally,
}

impl IfStatsBackend {
    pub fn open(iface: &str) -> Result<Self> {
        let start = read_counters(iface)?;
        Ok(Self {
            iface: iface.to_owned(),
            start,
        })
    }
}

impl Backend for IfStatsBackend {
    fn name(&self) -> &'static str {
        "ifstats"
    }

    fn describe(&self) -> String {
        format!("ifstats (interface counters) on {}", self.iface)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        let taken = Instant::now();
        let now = read_counters(&self.iface)?;
        let global = GlobalCounters {
            // A counter reset (the interface re-created) reads as a restart from zero.
            total: Tally {
                packets: now.packets.saturating_sub(self.start.packets),
                bytes: now.bytes.saturating_sub(self.start.bytes),
            },
            ..GlobalCounters::default()
        };
        Ok(Snapshot {
            taken,
            global,
            sources: SourceList::default(),
            listed_destinations: HashMap::new(),
            large_flows: Vec::new(),
            syn_acks_sent: None,
            capture_drops: None,
            dropped: HashMap::new(),
        })
    }

    fn set_scan_epoch(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }

    fn arm_capture(&mut self, _id: u32, _target: CaptureTarget) -> Result<()> {
        bail!("the ifstats backend sees no packets to capture")
    }

    fn disarm_capture(&mut self, _target: CaptureTarget) -> Result<()> {
        Ok(())
    }

    fn captured_packets(&mut self) -> Option<tokio::sync::mpsc::Receiver<CapturedPacket>> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn loopback_counters_count_from_the_start() {
        let mut backend = IfStatsBackend::open("lo").unwrap();
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..3 {
            sender
                .send_to(&[0u8; 100], receiver.local_addr().unwrap())
                .unwrap();
        }
        let snapshot = backend.snapshot().unwrap();
        let total = snapshot.global.total;
        // At least our three datagrams (others may use loopback meanwhile), each with
        // its IPv4 and UDP headers (loopback's driver leaves the Ethernet header out of
        // its byte count; a veth's includes it).
        assert!(total.packets >= 3, "{total:?}");
        assert!(total.bytes >= 3 * (20 + 8 + 100), "{total:?}");
        assert!(snapshot.sources.is_empty());
        let err = IfStatsBackend::open("no-such-if0").err().unwrap();
        assert!(format!("{err:#}").contains("no-such-if0"), "{err:#}");
    }
}
