//! `[connections]`: the connection monitor's settings (`crate::connections`).

use std::{num::NonZeroU32, time::Duration};

use serde::{Deserialize, Serialize};

use super::{duration_text, values::nz32};

/// The connection monitor: the host's own sockets and the processes holding them
/// (`connections/`), checked against the blocklist and a per-process limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Watch the host's sockets at all.
    pub enabled: bool,
    /// How often the sockets are listed (predecessor 002's `scan_interval`, read as
    /// this: `load::LEGACY_NAMES`).
    #[serde(
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_interval"
    )]
    pub interval: Duration,
    /// A process holding more connections than this is reported (predecessor 002's
    /// `connection_limit`).
    pub max_per_process: NonZeroU32,
    /// Count the connections a process accepted on a listening port too, not only
    /// those it opened.
    pub count_inbound: bool,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            max_per_process: nz32(20),
            count_inbound: false,
        }
    }
}
