//! `[detection]`: the thresholds of every detector (`crate::detect`): per source, for
//! the whole host, spikes against a baseline, port scans and large downloads.

use std::{
    num::{NonZeroU32, NonZeroU64},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    duration_text,
    values::{Fraction, Positive, nz32, nz64},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Predecessor 003 calls this section `thresholds_per_src` (`load::LEGACY_NAMES`).
    pub per_source: SourceThresholds,
    pub host: HostThresholds,
    pub spike: SpikeConfig,
    pub port_scan: PortScanConfig,
    pub large_download: LargeDownloadConfig,
}

/// What one source may send before it is reported. Rates are per second, measured
/// over one polling interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceThresholds {
    /// Packet-rate burst (predecessor 003: 4,000).
    pub pps: NonZeroU64,
    /// Bandwidth (predecessor 003: 20,000,000 bytes/s).
    pub bytes_per_sec: NonZeroU64,
    /// TCP SYNs (connection attempts) per second.
    pub syn_per_sec: NonZeroU64,
    /// SYNs per SYN-ACK sent back: a source whose handshakes mostly fail is flooding
    /// or scanning even below `syn_per_sec`. Applies only when the backend counts the
    /// host's SYN-ACKs (an egress hook) and from `syn_ratio_min_syn_per_sec` on.
    pub syn_ratio: Positive,
    pub syn_ratio_min_syn_per_sec: NonZeroU64,
    pub udp_pps: NonZeroU64,
    pub icmp_pps: NonZeroU64,
}

impl Default for SourceThresholds {
    fn default() -> Self {
        Self {
            pps: nz64(4_000),
            bytes_per_sec: nz64(20_000_000),
            syn_per_sec: nz64(500),
            syn_ratio: Positive(3.0),
            syn_ratio_min_syn_per_sec: nz64(100),
            // As high as `pps`: a QUIC download or a video stream is UDP too.
            udp_pps: nz64(4_000),
            icmp_pps: nz64(500),
        }
    }
}

/// What the whole host may receive, all sources together: catches a flood spread over
/// many (spoofed) sources that each stay under the per-source thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostThresholds {
    /// Predecessor 004: 85% of network-layer DDoS attacks stay under 50,000 pps.
    pub pps: NonZeroU64,
    /// 1 Gbit/s.
    pub bytes_per_sec: NonZeroU64,
    pub syn_per_sec: NonZeroU64,
    pub udp_pps: NonZeroU64,
    pub icmp_pps: NonZeroU64,
}

impl Default for HostThresholds {
    fn default() -> Self {
        Self {
            pps: nz64(50_000),
            bytes_per_sec: nz64(125_000_000),
            syn_per_sec: nz64(10_000),
            udp_pps: nz64(25_000),
            icmp_pps: nz64(5_000),
        }
    }
}

/// Traffic spikes against a learned baseline (exponentially weighted mean and
/// deviation of the host's pps and bytes/s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpikeConfig {
    /// Learning time before any spike is reported.
    #[serde(with = "duration_text")]
    pub warmup: Duration,
    /// Weight of one second of traffic in the baseline (0 < alpha <= 1); scaled to the
    /// interval, so the baseline forgets at the same pace whatever the interval.
    pub alpha: Fraction,
    /// How many deviations above the mean count as a spike.
    pub k_sigma: Positive,
    /// How long traffic must stay above the band before it is reported, so that one
    /// download filling the link for a moment is not an alert.
    #[serde(with = "duration_text")]
    pub sustain: Duration,
    /// Nothing below these rates is a spike, however quiet the baseline.
    pub min_pps: NonZeroU64,
    pub min_bytes_per_sec: NonZeroU64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        Self {
            warmup: Duration::from_secs(60),
            alpha: Fraction(0.02),
            k_sigma: Positive(4.0),
            sustain: Duration::from_secs(2),
            min_pps: nz64(10_000),
            min_bytes_per_sec: nz64(62_500_000),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortScanConfig {
    /// Distinct destination ports one source tries within `window`.
    pub ports: NonZeroU32,
    /// Distinct destination hosts one source tries within `window`.
    pub hosts: NonZeroU32,
    #[serde(
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_nonzero"
    )]
    pub window: Duration,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        Self {
            ports: nz32(100),
            hosts: nz32(20),
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LargeDownloadConfig {
    /// Inbound payload bytes of one flow (predecessor 000: 20 MB).
    pub bytes: NonZeroU64,
}

impl Default for LargeDownloadConfig {
    fn default() -> Self {
        Self {
            bytes: nz64(20_000_000),
        }
    }
}
