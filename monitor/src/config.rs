//! The configuration: what to watch, the detection thresholds, the address lists and
//! how alerts are paced. Read from a TOML file (`--config monitor.toml`), or YAML when
//! the file ends in `.yml`/`.yaml` (the format of predecessor 003); each setting can be
//! overridden by a command-line flag (`cli::Overrides`).
//!
//! The defaults live in the `Default` impls below and nowhere else; the shipped
//! `monitor.example.toml` documents them and a test keeps the two equal. Values are
//! checked while the file is deserialized (non-zero thresholds, fractions, durations,
//! CIDR syntax), so every error carries the field path and the line it is on.

use std::{
    fmt, io,
    num::{NonZeroU32, NonZeroU64},
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    cli::{BackendKind, XdpModeArg},
    model::cidr::Cidr,
    sink::WebhookConfig,
};

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
    pub mitigate: crate::mitigate::MitigateConfig,
}

/// Stats exports: one row per interval to a CSV or JSON-lines file (`crate::export`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// The file; `.csv` for CSV, `.json`/`.jsonl` for JSON lines. Appended to. A
    /// relative path in a file is relative to the configuration file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// The Prometheus endpoint (`crate::metrics`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address and port to serve `/metrics` on, e.g. 127.0.0.1:9850; none: no endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
}

/// The connection monitor: the host's own sockets and the processes holding them
/// (`connections/`), checked against the blocklist and a per-process limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Watch the host's sockets at all.
    pub enabled: bool,
    /// How often the sockets are listed (predecessor 002's `scan_interval`).
    #[serde(
        alias = "scan_interval",
        serialize_with = "duration_text::serialize",
        deserialize_with = "duration_text::deserialize_interval"
    )]
    pub interval: Duration,
    /// A process holding more connections than this is reported (predecessor 002's
    /// `connection_limit`).
    #[serde(alias = "connection_limit")]
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

impl FromStr for Snaplen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let value: u32 = s
            .parse()
            .map_err(|_| format!("expected a whole number, got `{s}`"))?;
        Self::try_from(value)
    }
}

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
    /// Sources the kernel tracks at once (an LRU table).
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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Predecessor 003 calls this section `thresholds_per_src`.
    #[serde(alias = "thresholds_per_src")]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    /// Addresses or networks whose traffic is always reported.
    pub blocklist: Vec<Cidr>,
    /// Files with one address or network a line, `#` comments. A relative path is
    /// relative to the configuration file.
    pub blocklist_files: Vec<PathBuf>,
    /// Sources that never raise an alert (allowlist wins over blocklist).
    pub allowlist: Vec<Cidr>,
    pub allowlist_files: Vec<PathBuf>,
    /// Leave private, loopback and link-local sources out of the burst alerts (pps and
    /// bandwidth), as predecessor 003 does; floods and scans still apply to them.
    pub exclude_private_from_burst: bool,
}

impl Default for ListsConfig {
    fn default() -> Self {
        Self {
            blocklist: Vec::new(),
            blocklist_files: Vec::new(),
            allowlist: Vec::new(),
            allowlist_files: Vec::new(),
            exclude_private_from_burst: true,
        }
    }
}

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
    /// Append a JSON object per alert to this file (schema in the README).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_log: Option<PathBuf>,
    /// Webhooks to POST every alert to: URLs, or tables `{ url, kind }`. Predecessor
    /// 003's single `webhook_url` is read as one entry.
    #[serde(
        alias = "webhook_url",
        deserialize_with = "crate::sink::webhook::deserialize_webhooks"
    )]
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

const fn nz64(n: u64) -> NonZeroU64 {
    match NonZeroU64::new(n) {
        Some(n) => n,
        None => NonZeroU64::MIN,
    }
}

const fn nz32(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// A finite number above zero.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Positive(pub f64);

impl Positive {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Positive {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, String> {
        if value.is_finite() && value > 0.0 {
            Ok(Self(value))
        } else {
            Err(format!("expected a number above 0, got {value}"))
        }
    }
}

/// A number in (0, 1].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Fraction(pub f64);

impl Fraction {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Fraction {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, String> {
        if value > 0.0 && value <= 1.0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "expected a number above 0 and at most 1, got {value}"
            ))
        }
    }
}

macro_rules! checked_float {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Self::try_from(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                let value: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
                Self::try_from(value)
            }
        }
    };
}

checked_float!(Positive);
checked_float!(Fraction);

/// Durations as text, `"250ms"`, `"1m 30s"`; a plain number is seconds, as in
/// predecessor 003's `cooldown: 60`.
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::cli::MIN_INTERVAL;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        FractionalSeconds(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(deserializer).map_err(|_| {
            D::Error::custom("expected a duration like \"1s\", \"250ms\" or a number of seconds")
        })? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::FractionalSeconds(s) => Duration::try_from_secs_f64(s)
                .map_err(|_| D::Error::custom(format!("{s} is not a duration in seconds"))),
            Raw::Text(text) => humantime::parse_duration(&text).map_err(|e| {
                D::Error::custom(format!("`{text}` is not a duration like 1s or 250ms: {e}"))
            }),
        }
    }

    pub fn deserialize_nonzero<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let d = deserialize(deserializer)?;
        if d.is_zero() {
            return Err(D::Error::custom("the duration must be above zero"));
        }
        Ok(d)
    }

    pub fn deserialize_interval<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let d = deserialize(deserializer)?;
        if d < MIN_INTERVAL {
            return Err(D::Error::custom(format!(
                "{} is below the 100ms minimum",
                humantime::format_duration(d)
            )));
        }
        Ok(d)
    }
}

/// A configuration the monitor cannot start with. Displayed on one line, naming the
/// file, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {}: {cause}", path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("{}: {message}", Location { path, line: *line, field: field.as_deref() })]
    Invalid {
        path: PathBuf,
        /// 1-based; `None` when the parser could not tell.
        line: Option<usize>,
        /// Dotted path, e.g. `detection.per_source.pps`.
        field: Option<String>,
        message: String,
    },
    #[error("{}, line {line}: {message}", path.display())]
    ListEntry {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

struct Location<'a> {
    path: &'a Path,
    line: Option<usize>,
    field: Option<&'a str>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(field) = self.field {
            write!(f, ", field `{field}`")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// YAML for `.yml` and `.yaml`, TOML otherwise.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("yml") || ext.eq_ignore_ascii_case("yaml") => {
                Self::Yaml
            }
            _ => Self::Toml,
        }
    }
}

impl Config {
    /// Reads a configuration file; list and log file paths in it become relative to its
    /// folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut config = Self::parse(&text, Format::of(path), path)?;
        if let Some(dir) = path.parent() {
            let lists = &mut config.lists;
            let alerting = &mut config.alerting;
            for file in lists
                .blocklist_files
                .iter_mut()
                .chain(&mut lists.allowlist_files)
                .chain(&mut alerting.log)
                .chain(&mut alerting.json_log)
                .chain(&mut config.export.path)
            {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Parses configuration text; `path` only names it in errors.
    pub fn parse(text: &str, format: Format, path: &Path) -> Result<Self, ConfigError> {
        match format {
            Format::Toml => parse_toml(text, path),
            Format::Yaml => parse_yaml(text, path),
        }
    }

    /// The configuration as TOML, for `--print-config`; it reads back as itself.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

/// serde names Rust types ("expected a nonzero u64"); say what to write instead.
fn plain_words(message: &str) -> String {
    [
        ("a nonzero u64", "a whole number above 0"),
        ("a nonzero u32", "a whole number above 0"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(one_line(message.trim()), |text, (from, to)| {
        text.replace(from, to)
    })
}

/// A key or value quoted in an error may hold line breaks (a YAML key spread over
/// lines, a TOML key with `\n`); the error stays one line, with them escaped.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn field_path(path: &serde_path_to_error::Path) -> Option<String> {
    let text = one_line(&path.to_string());
    (text != ".").then_some(text)
}

fn parse_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let invalid =
        |err: &toml::de::Error, field: Option<String>, line: Option<usize>| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line.or_else(|| err.span().map(|span| line_at(span.start))),
            field,
            message: plain_words(err.message()),
        };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| invalid(&err, None, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // toml places an error in an array element on the whole array; the element's
        // own span gives its line.
        let line = toml_value_start(text, err.path()).map(line_at);
        invalid(err.inner(), field_path(err.path()), line)
    })
}

/// Where the value at `path` starts in the TOML `text`, if it is there.
fn toml_value_start(text: &str, path: &serde_path_to_error::Path) -> Option<usize> {
    use serde_path_to_error::Segment;
    use toml::de::{DeTable, DeValue};

    let root = DeTable::parse(text).ok()?;
    let root = DeValue::Table(root.into_inner());
    let mut value = &root;
    let mut start = None;
    for segment in path.iter() {
        let next = match segment {
            Segment::Map { key } => value.get(key.as_str())?,
            Segment::Seq { index } => value.get(*index)?,
            Segment::Enum { .. } | Segment::Unknown => return start,
        };
        start = Some(next.span().start);
        value = next.get_ref();
    }
    start
}

fn parse_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
    // An empty document (or only comments) is no configuration at all: the defaults.
    let is_empty = text
        .lines()
        .all(|line| matches!(line.trim(), "" | "---") || line.trim_start().starts_with('#'));
    if is_empty {
        return Ok(Config::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let location = err.inner().location();
        // serde_yaml_ng puts its own path in front and the location behind; both are
        // reported separately here.
        let mut message = err.inner().to_string();
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.contains(' ') {
                message = rest.to_owned();
            }
        }
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: location.map(|loc| loc.line()),
            field: field_path(err.path()),
            message: plain_words(&message),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Format::Toml, Path::new("monitor.toml"))
    }

    fn yaml(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Format::Yaml, Path::new("config.yml"))
    }

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor.example.toml")
    }

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let example = Config::from_file(&example_path()).unwrap();
        assert_eq!(example, Config::default());
    }

    /// Every setting the defaults serialize must be spelled out (uncommented) in the
    /// example, so that the example documents every field.
    #[test]
    fn the_shipped_example_names_every_field() {
        fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (key, value) in table {
                let path = format!("{prefix}{key}");
                match value {
                    toml::Value::Table(inner) => keys(&format!("{path}."), inner, out),
                    _ => out.push(path),
                }
            }
        }
        let text = std::fs::read_to_string(example_path()).unwrap();
        let example: toml::Table = text.parse().unwrap();
        let defaults: toml::Table = Config::default().to_toml().unwrap().parse().unwrap();
        let (mut documented, mut all) = (Vec::new(), Vec::new());
        keys("", &example, &mut documented);
        keys("", &defaults, &mut all);
        let missing: Vec<_> = all.iter().filter(|k| !documented.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "not in monitor.example.toml: {missing:?}"
        );
        // The optional settings are shown commented out.
        assert!(text.contains("# iface = "));
        assert!(text.contains("# bpf = "));
    }

    #[test]
    fn printed_config_reads_back_as_itself() {
        let mut config = Config::default();
        config.capture.iface = Some("eth0".into());
        config.capture.interval = Duration::from_millis(250);
        config.lists.blocklist = vec![
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        config.lists.blocklist_files = vec![PathBuf::from("/etc/monitor/block.txt")];
        config.detection.spike.alpha = Fraction(0.5);
        let text = config.to_toml().unwrap();
        assert!(text.contains("interval = \"250ms\""), "{text}");
        assert_eq!(toml(&text).unwrap(), config);
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(toml("").unwrap(), Config::default());
        assert_eq!(yaml("# nothing yet\n").unwrap(), Config::default());
    }

    #[test]
    fn partial_sections_keep_the_other_defaults() {
        let config =
            toml("[detection.per_source]\npps = 8000\n[alerting]\ncooldown = 30\n").unwrap();
        assert_eq!(config.detection.per_source.pps.get(), 8_000);
        assert_eq!(config.detection.per_source.bytes_per_sec.get(), 20_000_000);
        assert_eq!(config.alerting.cooldown, Duration::from_secs(30));
        assert_eq!(config.detection.host, HostThresholds::default());
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        // (file text, line, field, words in the message)
        #[rustfmt::skip]
        let cases = [
            ("[detection.per_source]\npps = 0\n", 2, "detection.per_source.pps", "invalid value: integer `0`, expected a whole number above 0"),
            ("[detection.per_source]\n\npps = -5\n", 3, "detection.per_source.pps", "integer `-5`"),
            ("[detection.host]\nsyn_per_sec = \"lots\"\n", 2, "detection.host.syn_per_sec", "invalid type: string \"lots\", expected a whole number above 0"),
            ("[detection.per_source]\nppps = 4000\n", 2, "detection.per_source.ppps", "unknown field `ppps`"),
            ("[capture]\ninterval = \"10ms\"\n", 2, "capture.interval", "10ms is below the 100ms minimum"),
            ("[capture]\ntop = 2.5\n", 2, "capture.top", "expected a whole number"),
            ("[detection.spike]\nalpha = 1.5\n", 2, "detection.spike.alpha", "above 0 and at most 1, got 1.5"),
            ("[detection.spike]\nk_sigma = 0\n", 2, "detection.spike.k_sigma", "above 0, got 0"),
            ("[detection.port_scan]\nwindow = \"0s\"\n", 2, "detection.port_scan.window", "above zero"),
            ("[lists]\nblocklist = [\n  \"192.0.2.0/24\",\n  \"10.0.0.0/33\",\n]\n", 4, "lists.blocklist[1]", "prefix length must be 0 to 32"),
            ("[lists]\nexclude_private_from_burst = \"no\"\n", 2, "lists.exclude_private_from_burst", "expected true or false"),
            ("[capture]\nxdp_mode = \"fast\"\n", 2, "capture.xdp_mode", "unknown variant `fast`"),
            ("[alerting]\ncooldown = \"soon\"\n", 2, "alerting.cooldown", "`soon` is not a duration"),
            ("[nope]\n", 1, "nope", "unknown field `nope`"),
        ];
        for (text, line, field, words) in cases {
            let err = toml(text).unwrap_err();
            let shown = err.to_string();
            assert!(!shown.contains('\n'), "one line: {shown}");
            assert!(
                shown.starts_with(&format!("monitor.toml, line {line}, field `{field}`: ")),
                "{shown}"
            );
            assert!(shown.contains(words), "{shown}");
        }
        let syntax = toml("[capture]\niface = eth0\n").unwrap_err().to_string();
        assert!(syntax.starts_with("monitor.toml, line 2: "), "{syntax}");
    }

    #[test]
    fn yaml_in_the_shape_of_predecessor_003() {
        let text = "capture:\n  iface: eth0\n\ndetection:\n  thresholds_per_src:\n    pps: 4000\n    bytes_per_sec: 20000000\nalerting:\n  cooldown: 60\n";
        let config = yaml(text).unwrap();
        assert_eq!(config.capture.iface.as_deref(), Some("eth0"));
        assert_eq!(config.alerting.cooldown, Duration::from_secs(60));
        assert_eq!(config.detection, DetectionConfig::default());

        let err = yaml("detection:\n  per_source:\n    pps: 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config.yml, line 3, field `detection.per_source.pps`: invalid value: integer `0`, expected a whole number above 0"
        );
        // Its single `webhook_url` is read as one webhook, its kind inferred.
        let config = yaml("alerting:\n  webhook_url: \"https://hooks.slack.com/services/T0/B0/x\"\n  cooldown: 60\n").unwrap();
        assert_eq!(config.alerting.webhooks.len(), 1);
        assert_eq!(
            config.alerting.webhooks[0].kind(),
            crate::sink::WebhookKind::Slack
        );
        let err = yaml("alerting:\n  verbosity: high\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config.yml, line 2, field `alerting.verbosity`: unknown field"),
            "{err}"
        );
    }

    #[test]
    fn webhooks_as_urls_or_tables() {
        let config = toml(
            "[alerting]\nwebhooks = [\n  \"https://discord.com/api/webhooks/1/tok\",\n  { url = \"https://alerts.example/hook\", kind = \"slack\" },\n]\n",
        )
        .unwrap();
        let hooks = &config.alerting.webhooks;
        assert_eq!(hooks[0].kind(), crate::sink::WebhookKind::Discord);
        assert_eq!(hooks[1].kind(), crate::sink::WebhookKind::Slack);
        // Printed redacted, with the kind in effect.
        let printed = config.to_toml().unwrap();
        assert!(!printed.contains("tok"), "{printed}");
        assert!(
            printed.contains("url = \"https://discord.com/api/webhooks/…\""),
            "{printed}"
        );
        assert!(printed.contains("kind = \"discord\""), "{printed}");

        #[rustfmt::skip]
        let cases = [
            ("[alerting]\nwebhooks = [\"ftp://x.example/s3cr3t\"]\n", "alerting.webhooks[0]", "the scheme must be http or https"),
            ("[alerting]\nwebhooks = [\n  \"https://a.example/\",\n  { url = \"https://b.example/s3cr3t\", kind = \"pager\" },\n]\n", "alerting.webhooks[1].kind", "unknown variant `pager`"),
            ("[alerting]\nwebhooks = [{ uri = \"https://b.example/\" }]\n", "alerting.webhooks[0].uri", "unknown field `uri`"),
            ("[alerting.delivery]\nrate_per_sec = 0\n", "alerting.delivery.rate_per_sec", "above 0"),
            ("[alerting.delivery]\ntimeout = \"0s\"\n", "alerting.delivery.timeout", "above zero"),
        ];
        for (text, field, words) in cases {
            let err = toml(text).unwrap_err().to_string();
            assert!(err.contains(&format!("field `{field}`")), "{err}");
            assert!(err.contains(words), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/monitor.toml")), Format::Toml);
        assert_eq!(Format::of(Path::new("config.YAML")), Format::Yaml);
        assert_eq!(Format::of(Path::new("config.yml")), Format::Yaml);
        assert_eq!(Format::of(Path::new("monitor.conf")), Format::Toml);
    }

    #[test]
    fn list_files_are_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("monitor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("monitor.toml");
        std::fs::write(
            &path,
            "[lists]\nblocklist_files = [\"block.txt\", \"/abs/list.txt\"]\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(
            config.lists.blocklist_files,
            [dir.join("block.txt"), PathBuf::from("/abs/list.txt")]
        );
        let missing = Config::from_file(&dir.join("absent.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("failed to read ") && missing.contains("absent.toml"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Found by `cargo xtask fuzz` (target `config`, the exact bytes after its format
    /// byte): YAML breaks lines at a lone CR too, so the error's line (21) counts the
    /// 19 CRs; the message stays one line.
    #[test]
    fn a_yaml_error_after_lone_carriage_returns_is_one_line_naming_the_yaml_line() {
        let text = concat!(
            "detection:\n~ %pe",
            "\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r",
            "r_source:0    pps: 1000\n    s}n_pebhooks:\n",
            "    - url: \"http://127.0.0.1:9block.txt\"]\n"
        );
        let err = yaml(text).unwrap_err();
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with("config.yml, line 21, field `detection`"),
            "{message}"
        );
    }

    /// Found by `cargo xtask fuzz` (target `config`, the exact bytes after its format
    /// byte): an unknown key spread over 61 lines was quoted as it was, line breaks and
    /// all, in the field and the message.
    #[test]
    fn an_unknown_key_with_line_breaks_is_quoted_on_one_line() {
        let text = format!("{{tectiona non.per_ogins.wjbheo= {}73c", "\n".repeat(61));
        let message = yaml(&text).unwrap_err().to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.contains("unknown field `tectiona non.per_ogins.wjbheo=\\n\\n"),
            "{message}"
        );
        let toml_key = toml("\"a\\nb\" = 1").unwrap_err().to_string();
        assert!(!toml_key.contains('\n'), "{toml_key}");
    }
}
