//! `[pcap]`: triggered capture (`crate::capture` plans it, `monitor::run` arms it,
//! `monitor::capture_writer` writes it), and the snap length it keeps of each packet.

use std::{
    num::{NonZeroU32, NonZeroU64},
    time::Duration,
};

use serde::{Deserialize, Deserializer, Serialize};

use super::{
    duration_text,
    values::{nz32, nz64},
};

/// Triggered capture: on an alert, the offending source's packets (every packet for a
/// distributed flood) go to a pcap file, as the XDP hook saw them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcapConfig {
    /// Capture on alerts at all.
    pub enabled: bool,
    /// Where the files go: `<kind>_<source>_<UTC time>.pcap`.
    pub dir: std::path::PathBuf,
    /// A capture ends after this many packets...
    pub max_packets: NonZeroU32,
    /// ...or after this long, whichever comes first.
    #[serde(
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_nonzero"
    )]
    pub max_duration: Duration,
    /// Bytes kept of each packet (1 to 4096).
    pub snaplen: Snaplen,
    /// Total size of the directory's captures; the oldest files go first.
    pub max_disk_bytes: NonZeroU64,
}

impl Default for PcapConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: "captures".into(),
            max_packets: nz32(10_000),
            max_duration: Duration::from_secs(30),
            snaplen: Snaplen(256),
            max_disk_bytes: nz64(1 << 30),
        }
    }
}

/// Bytes kept of each captured packet: 1 to 4096 (the kernel's copy is bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Snaplen(pub u32);

impl TryFrom<u32> for Snaplen {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, String> {
        if (1..=monitor_common::counters::MAX_CAPTURE_SNAPLEN).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "expected a snap length from 1 to {}, got {value}",
                monitor_common::counters::MAX_CAPTURE_SNAPLEN
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Snaplen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(u32::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}
