//! `[alerting]`: how alerts are paced and where they go (`crate::alert` tracks them,
//! `monitor::delivery` delivers them), and `[alerting.delivery]`: the per-sink queues,
//! retries and rate limits.

use std::{num::NonZeroU32, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    duration_text,
    values::{Positive, nz32},
    webhook::WebhookConfig,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// After an alert, the same kind from the same source is not raised again for
    /// this long (a recurrence is held back, then raised if it is still going).
    #[serde(with = "duration_text")]
    pub cooldown: Duration,
    /// Consecutive clear intervals before an alert is declared ended.
    pub clear_intervals: NonZeroU32,
    /// Colour alert lines on stdout by severity (only ever when stdout is a terminal
    /// and `NO_COLOR` is not set).
    pub color: bool,
    /// The name webhooks show for this machine; none means the hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Append a timestamped line per alert to this file. A relative path in a file is
    /// relative to the configuration file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// Append a JSON object per alert to this file (schema in docs/alerting.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_log: Option<PathBuf>,
    /// Webhooks to POST every alert to: URLs, or tables `{ url, kind }`. Predecessor
    /// 003's single `webhook_url` is read as one entry (`load::LEGACY_NAMES`).
    #[serde(deserialize_with = "super::webhook::deserialize_webhooks")]
    pub webhooks: Vec<WebhookConfig>,
    pub delivery: DeliveryConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(60),
            clear_intervals: nz32(3),
            color: true,
            server_name: None,
            log: None,
            json_log: None,
            webhooks: Vec::new(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// How alerts reach the log files and webhooks: each sink has its own queue and
/// worker, so a slow one delays no other and never the polling loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Notices waiting per sink; when the queue is full, new ones are dropped for that
    /// sink, counted and logged.
    pub queue: NonZeroU32,
    /// Timeout of one webhook request, connection included.
    #[serde(
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_nonzero"
    )]
    pub timeout: Duration,
    /// Retries after a failed webhook attempt (timeout, connection error, 5xx, 429)
    /// before the notice may be given up; it is given up only when the queue is full
    /// behind it, and retried on (at most 60s apart) while the queue has room.
    pub retries: u32,
    /// Wait before the first retry, doubling with each retry (at most 60s); a 429
    /// says its own wait.
    #[serde(with = "duration_text")]
    pub backoff: Duration,
    /// Webhook requests per second, per webhook, after a burst of `burst`.
    pub rate_per_sec: Positive,
    pub burst: NonZeroU32,
    /// On shutdown, how long to keep delivering what is queued.
    #[serde(with = "duration_text")]
    pub flush_timeout: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            queue: nz32(256),
            timeout: Duration::from_secs(10),
            retries: 4,
            backoff: Duration::from_secs(1),
            // Discord allows a webhook 5 requests per 2 seconds.
            rate_per_sec: Positive(2.0),
            burst: nz32(5),
            flush_timeout: Duration::from_secs(5),
        }
    }
}
