//! `[mitigate]`: what the XDP program does with blocklisted and flooding sources, and
//! how bans are placed (`crate::mitigate` applies it).

use std::{num::NonZeroU32, time::Duration};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::duration_text;
use crate::model::cidr::Cidr;

/// What mitigation does with blocklisted and banned sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MitigateMode {
    /// Monitoring only.
    #[default]
    Off,
    /// Drop their packets in XDP.
    On,
    /// Count what would be dropped, drop nothing.
    DryRun,
}

impl MitigateMode {
    /// The value of `Settings::mitigation` in the kernel.
    pub fn kernel_value(self) -> u64 {
        use monitor_common::counters::{MITIGATION_DROP, MITIGATION_DRY_RUN, MITIGATION_OFF};
        match self {
            Self::Off => MITIGATION_OFF,
            Self::On => MITIGATION_DROP,
            Self::DryRun => MITIGATION_DRY_RUN,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::DryRun => "dry-run",
        }
    }
}

/// `[mitigate]`: banning flooding sources in the kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MitigateConfig {
    /// off, on or dry-run.
    pub mode: MitigateMode,
    /// A source is banned once one of its flood alerts has held for this many
    /// intervals in a row.
    pub confirm_intervals: NonZeroU32,
    /// How long a ban lasts.
    #[serde(
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_nonzero"
    )]
    pub ban_time: Duration,
    /// Bans at once at most: a random-source flood cannot fill the table.
    pub max_bans: NonZeroU32,
    /// Sources never banned nor dropped, though still alerted on (`lists.allowlist`
    /// is never banned either, and never alerted on).
    pub allowlist: Vec<Cidr>,
}

impl Default for MitigateConfig {
    fn default() -> Self {
        Self {
            mode: MitigateMode::Off,
            confirm_intervals: NonZeroU32::new(3).expect("non-zero"),
            ban_time: Duration::from_secs(300),
            max_bans: NonZeroU32::new(1_000).expect("non-zero"),
            allowlist: Vec::new(),
        }
    }
}
