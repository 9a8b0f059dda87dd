//! The configuration: what to watch, the detection thresholds, the address lists and
//! how alerts are paced. Read from a TOML file (`--config monitor.toml`), or YAML when
//! the file ends in `.yml`/`.yaml` (the format of predecessor 003); each setting can be
//! overridden by a command-line flag (`monitor::cli`).
//!
//! One file per section of the file (`capture`, `detection`, `lists`, ...), plus how a
//! file is read (`load`), the values laid over it as it is read (`overlay`: the flags,
//! checked by the same code as the file), why a configuration is refused (`error`) and
//! the checked values the sections share (`values`, `duration_text`). This layer sits
//! below every other module but the plain data ones: it imports nothing else from the
//! crate but `Cidr`.
//!
//! The defaults live in the `Default` impls and nowhere else; the shipped
//! `monitor.example.toml` documents them and a test keeps the two equal. Values are
//! checked while the file is deserialized (non-zero thresholds, fractions, durations,
//! CIDR syntax), so every error carries the field path and the line it is on.

use serde::{Deserialize, Serialize};

mod alerting;
mod capture;
mod connections;
mod detection;
pub mod duration_text;
mod error;
mod export;
mod lists;
mod load;
mod metrics;
mod mitigate;
mod overlay;
mod pcap;
mod values;
pub mod webhook;

pub use alerting::{AlertingConfig, DeliveryConfig};
pub use capture::{BackendKind, CaptureConfig, MIN_INTERVAL, XdpModeArg};
pub use connections::ConnectionsConfig;
pub use detection::{
    DetectionConfig, HostThresholds, LargeDownloadConfig, PortScanConfig, SourceThresholds,
    SpikeConfig,
};
pub use error::ConfigError;
pub use export::ExportConfig;
pub use lists::ListsConfig;
pub use load::{Format, value_at};
pub use metrics::MetricsConfig;
pub use mitigate::{MitigateConfig, MitigateMode};
pub use pcap::{PcapConfig, Snaplen};
pub use values::{Fraction, Positive};
pub use webhook::{WebhookConfig, WebhookKind, WebhookUrl};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub detection: DetectionConfig,
    pub lists: ListsConfig,
    pub alerting: AlertingConfig,
    pub pcap: PcapConfig,
    pub export: ExportConfig,
    pub metrics: MetricsConfig,
    pub connections: ConnectionsConfig,
    pub mitigate: MitigateConfig,
}

#[cfg(test)]
mod tests;
