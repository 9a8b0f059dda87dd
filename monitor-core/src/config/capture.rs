//! `[capture]`: what is watched and how the packets are counted: the interface, the
//! polling interval, the backend and its options.

use std::{num::NonZeroU32, time::Duration};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::{duration_text, values::nz32};

/// The shortest polling interval: below it, reading the maps costs more than it tells.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interface to watch; none means the interface of the default route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// How often the counters are polled and the detectors run (100ms at least).
    #[serde(
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_interval"
    )]
    pub interval: Duration,
    /// What counts the packets: `auto`, `xdp`, `pcap` or `ifstats`.
    pub backend: BackendKind,
    /// Capture filter for the pcap backend (libpcap syntax); none: every packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<String>,
    pub xdp_mode: XdpModeArg,
    /// Sources tracked at once: a full table forgets its least recently seen sources (in
    /// the kernel's set-associative table, per set of 8).
    pub max_sources: NonZeroU32,
    /// Top sources listed on each stats line.
    pub top: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            iface: None,
            interval: Duration::from_secs(1),
            backend: BackendKind::Auto,
            bpf: None,
            xdp_mode: XdpModeArg::Auto,
            max_sources: nz32(monitor_common::DEFAULT_MAX_SOURCES),
            top: 5,
        }
    }
}

/// `--backend`: what counts the packets.
#[derive(ValueEnum, Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[expect(
    clippy::doc_markdown,
    reason = "clap prints these docs as the --help text, backticks and all"
)]
pub enum BackendKind {
    /// XDP on Linux with BPF rights, else pcap if it can open the interface, else ifstats
    #[default]
    Auto,
    /// The XDP program (Linux; CAP_BPF and CAP_NET_ADMIN)
    Xdp,
    /// libpcap (Npcap on Windows): every detector, no BPF rights needed
    Pcap,
    /// The interface's packet and byte counters: no capture rights at all, totals only
    Ifstats,
}

#[derive(ValueEnum, Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Native (driver) mode, falling back to skb mode with a warning
    #[default]
    Auto,
    /// Native (driver) mode only
    Native,
    /// Generic (skb) mode only
    Skb,
}
