//! Alerts as data: what the detectors found ([`Finding`]) and what the operator is
//! told ([`AlertEvent`]: an alert, the end of one, a ban or an unban). The tracker that
//! turns the first into the second is `crate::alert`.
//!
//! JSON lines: `{"type":"alert","kind":"syn_flood","severity":"high","source":"192.0.2.9",
//! "target":"eth0","value":1500.0,"threshold":500.0,"unit":"syn_per_sec",
//! "started_at":"2025-09-03T21:09:12.012Z","message":"..."}` and
//! `{"type":"alert_end",...,"ended_at":...,"duration_secs":...}`.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    time::SystemTime,
};

use serde::{Serialize, Serializer};

use super::{
    ban::{BanEvent, UnbanEvent},
    connection::ConnectionDetails,
    format::{bitrate, rfc3339, thousands},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    SynFlood,
    UdpFlood,
    IcmpFlood,
    PpsBurst,
    Bandwidth,
    Spike,
    PortScan,
    LargeDownload,
    Blocklisted,
    /// The connection monitor (`connections/`): a local process connected to a
    /// blocklisted address...
    BlocklistedConnection,
    /// ...or holding more connections than allowed.
    ExcessiveConnections,
    /// Mitigation's events (`mitigate`), reported through the same sinks.
    Ban,
    Unban,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SynFlood => "syn_flood",
            Self::UdpFlood => "udp_flood",
            Self::IcmpFlood => "icmp_flood",
            Self::PpsBurst => "pps_burst",
            Self::Bandwidth => "bandwidth",
            Self::Spike => "spike",
            Self::PortScan => "port_scan",
            Self::LargeDownload => "large_download",
            Self::Blocklisted => "blocklisted",
            Self::BlocklistedConnection => "blocklisted_connection",
            Self::ExcessiveConnections => "excessive_connections",
            Self::Ban => "ban",
            Self::Unban => "unban",
        }
    }

    /// The kinds that mean "too much traffic": while one is raised, the spike baseline
    /// does not learn.
    pub fn is_volume(self) -> bool {
        matches!(
            self,
            Self::SynFlood
                | Self::UdpFlood
                | Self::IcmpFlood
                | Self::PpsBurst
                | Self::Bandwidth
                | Self::Spike
        )
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The rule: by how many times the value exceeds its threshold (under 2x low, 2x
    /// medium, 4x high, 10x critical). Protocol floods are at least medium: a SYN, UDP
    /// or ICMP flood has no innocent reading. A blocklisted address is always high (the
    /// operator listed it); a large download is always low (it is a notice).
    pub fn rate(kind: AlertKind, value: f64, threshold: f64) -> Self {
        match kind {
            AlertKind::Blocklisted | AlertKind::BlocklistedConnection => return Self::High,
            AlertKind::LargeDownload => return Self::Low,
            _ => {}
        }
        let excess = if threshold > 0.0 {
            value / threshold
        } else {
            f64::INFINITY
        };
        let by_excess = if excess >= 10.0 {
            Self::Critical
        } else if excess >= 4.0 {
            Self::High
        } else if excess >= 2.0 {
            Self::Medium
        } else {
            Self::Low
        };
        match kind {
            AlertKind::SynFlood | AlertKind::UdpFlood | AlertKind::IcmpFlood => {
                by_excess.max(Self::Medium)
            }
            _ => by_excess,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Who is doing it: one address, or many (a distributed or spoofed flood, or a change
/// of the host's traffic as a whole), or a local process (by pid, for the connection
/// monitor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertSource {
    Ip(IpAddr),
    Many,
    Process(u32),
}

impl fmt::Display for AlertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Many => f.write_str("many"),
            Self::Process(pid) => write!(f, "pid {pid}"),
        }
    }
}

impl Serialize for AlertSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What `value` and `threshold` measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Pps,
    BytesPerSec,
    SynPerSec,
    Ports,
    Hosts,
    Bytes,
    Packets,
    Connections,
}

impl Unit {
    /// `value` for a person: "12,000 pps", "160.0 Mbit/s", "25.3 MB".
    pub fn format(self, value: f64) -> String {
        let n = thousands(value.max(0.0).round() as u64);
        match self {
            Self::Pps => format!("{n} pps"),
            Self::BytesPerSec => bitrate(value * 8.0),
            Self::SynPerSec => format!("{n} SYN/s"),
            Self::Ports => format!("{n} ports"),
            Self::Hosts => format!("{n} hosts"),
            Self::Packets => format!("{n} packets"),
            Self::Connections => format!("{n} connections"),
            Self::Bytes => megabytes(value),
        }
    }
}

fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// One flow, from the side that sent the payload (`src`) to the side that received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// IP protocol number: 6 TCP, 17 UDP.
    pub protocol: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    pub fn protocol_name(&self) -> String {
        protocol_name(self.protocol)
    }
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "tcp".into(),
        17 => "udp".into(),
        other => format!("ip proto {other}"),
    }
}

/// A flow's endpoints and what it carried, for flow alerts (large downloads).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowDetails {
    #[serde(serialize_with = "serialize_protocol")]
    pub protocol: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub bytes: u64,
    pub duration_secs: f64,
}

impl FlowDetails {
    pub fn key(&self) -> FlowKey {
        FlowKey {
            protocol: self.protocol,
            src: SocketAddr::new(self.src, self.src_port),
            dst: SocketAddr::new(self.dst, self.dst_port),
        }
    }
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's `serialize_with` passes the field by reference"
)]
fn serialize_protocol<S: Serializer>(protocol: &u8, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&protocol_name(*protocol))
}

/// What an alert is about: the monitored interface, the local endpoint of a flow, or
/// a local process (the connection monitor's alerts). Shown and serialized as one
/// string: `eth0`, `192.0.2.10:51234`, `curl[1234]`.
#[derive(Clone, Debug)]
pub enum Target {
    Interface(String),
    Endpoint(SocketAddr),
    /// `pid` is `None` when no process could be read for the socket.
    Process {
        pid: Option<u32>,
        name: Option<String>,
    },
}

impl Target {
    pub fn process(pid: Option<u32>, name: Option<&str>) -> Self {
        Self::Process {
            pid,
            name: name.map(str::to_owned),
        }
    }
}

impl fmt::Display for Target {
    /// A process reads `curl[1234]`, `pid 1234` when its name is unknown, `unknown
    /// process` when the socket's owner could not be read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interface(name) => f.write_str(name),
            Self::Endpoint(addr) => addr.fmt(f),
            Self::Process {
                pid: Some(pid),
                name: Some(name),
            } => write!(f, "{name}[{pid}]"),
            Self::Process {
                pid: Some(pid),
                name: None,
            } => write!(f, "pid {pid}"),
            Self::Process { pid: None, .. } => f.write_str("unknown process"),
        }
    }
}

/// Targets are compared, ordered and hashed as they are shown, as the strings they
/// replaced were: alerts keep their order and their identity (a process whose name is
/// unknown is "pid 1234" either way). An interface, the target of nearly every alert,
/// is compared without formatting.
impl Target {
    fn shown(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Interface(name) => std::borrow::Cow::Borrowed(name),
            other => std::borrow::Cow::Owned(other.to_string()),
        }
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.shown() == other.shown()
    }
}

impl Eq for Target {}

impl std::hash::Hash for Target {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.shown().hash(state);
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.shown().cmp(&other.shown())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Compared as shown: `finding.target == "eth0"`.
impl PartialEq<&str> for Target {
    fn eq(&self, other: &&str) -> bool {
        self.shown() == *other
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A condition a detector found in one interval. The tracker decides whether it
/// becomes an alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: AlertKind,
    pub source: AlertSource,
    /// What is hit: the monitored interface, or the local endpoint of a flow.
    pub target: Target,
    pub value: f64,
    pub threshold: f64,
    pub unit: Unit,
    /// One sentence with the numbers, without kind or source (renderers add them).
    pub message: String,
    pub flow: Option<FlowDetails>,
    /// For the connection monitor's alerts: the process and its socket.
    pub connection: Option<ConnectionDetails>,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        Severity::rate(self.kind, self.value, self.threshold)
    }
}

/// An alert as raised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    pub source: AlertSource,
    pub target: Target,
    pub value: f64,
    pub threshold: f64,
    pub unit: Unit,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: SystemTime,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionDetails>,
}

/// The end of an alert: its condition has been clear for `clear_intervals`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEnd {
    pub kind: AlertKind,
    /// The highest severity it reached.
    pub severity: Severity,
    pub source: AlertSource,
    pub target: Target,
    /// The highest value it reached.
    pub peak_value: f64,
    pub threshold: f64,
    pub unit: Unit,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: SystemTime,
    /// When the condition was first seen clear.
    #[serde(serialize_with = "rfc3339")]
    pub ended_at: SystemTime,
    pub duration_secs: f64,
    /// For a flow alert, the flow as last seen (its final size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowDetails>,
    /// For a connection alert, the process and socket as last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionDetails>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertEvent {
    Alert(Alert),
    AlertEnd(AlertEnd),
    Ban(BanEvent),
    Unban(UnbanEvent),
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn severity_follows_the_excess_with_floors_per_kind() {
        use AlertKind::*;
        assert_eq!(Severity::rate(PpsBurst, 4_100.0, 4_000.0), Severity::Low);
        assert_eq!(Severity::rate(PpsBurst, 8_000.0, 4_000.0), Severity::Medium);
        assert_eq!(Severity::rate(Bandwidth, 16.0, 4.0), Severity::High);
        assert_eq!(Severity::rate(Spike, 40.0, 4.0), Severity::Critical);
        assert_eq!(Severity::rate(SynFlood, 501.0, 500.0), Severity::Medium);
        assert_eq!(
            Severity::rate(UdpFlood, 50_000.0, 4_000.0),
            Severity::Critical
        );
        assert_eq!(Severity::rate(Blocklisted, 1.0, 1.0), Severity::High);
        assert_eq!(Severity::rate(LargeDownload, 1e9, 2e7), Severity::Low);
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
    }

    #[test]
    fn json_shape() {
        let alert = Alert {
            kind: AlertKind::SynFlood,
            severity: Severity::High,
            source: AlertSource::Ip("192.0.2.9".parse().unwrap()),
            target: Target::Interface("eth0".into()),
            value: 2_000.0,
            threshold: 500.0,
            unit: Unit::SynPerSec,
            started_at: UNIX_EPOCH + Duration::from_millis(1_756_933_752_012),
            message: "SYN rate 2,000 SYN/s (threshold 500 SYN/s)".into(),
            flow: None,
            connection: None,
        };
        let line = serde_json::to_string(&AlertEvent::Alert(alert)).unwrap();
        assert_eq!(
            line,
            r#"{"type":"alert","kind":"syn_flood","severity":"high","source":"192.0.2.9","target":"eth0","value":2000.0,"threshold":500.0,"unit":"syn_per_sec","started_at":"2025-09-03T21:09:12.012Z","message":"SYN rate 2,000 SYN/s (threshold 500 SYN/s)"}"#
        );
        let end = AlertEnd {
            kind: AlertKind::PpsBurst,
            severity: Severity::Critical,
            source: AlertSource::Many,
            target: Target::Interface("eth0".into()),
            peak_value: 600_000.0,
            threshold: 50_000.0,
            unit: Unit::Pps,
            started_at: UNIX_EPOCH,
            ended_at: UNIX_EPOCH + Duration::from_secs(42),
            duration_secs: 42.0,
            flow: None,
            connection: None,
        };
        let value = serde_json::to_value(AlertEvent::AlertEnd(end)).unwrap();
        assert_eq!(value["type"], "alert_end");
        assert_eq!(value["source"], "many");
        assert_eq!(value["ended_at"], "1970-01-01T00:00:42.000Z");
        assert_eq!(value["duration_secs"], 42.0);
    }

    #[test]
    fn units_read_well() {
        assert_eq!(Unit::Pps.format(12_000.4), "12,000 pps");
        assert_eq!(Unit::BytesPerSec.format(20_000_000.0), "160.0 Mbit/s");
        assert_eq!(Unit::Bytes.format(25_300_000.0), "25.3 MB");
        assert_eq!(Unit::SynPerSec.format(1_500.0), "1,500 SYN/s");
    }

    #[test]
    fn targets_read_compare_and_sort_as_the_strings_they_replaced() {
        let eth0 = Target::Interface("eth0".into());
        let flow = Target::Endpoint("192.0.2.10:51234".parse().unwrap());
        let curl = Target::process(Some(100), Some("curl"));
        let unnamed = Target::process(Some(7), None);
        let unknown = Target::process(None, Some("x"));
        assert_eq!(
            [&eth0, &flow, &curl, &unnamed, &unknown].map(ToString::to_string),
            [
                "eth0",
                "192.0.2.10:51234",
                "curl[100]",
                "pid 7",
                "unknown process"
            ]
        );
        assert_eq!(
            unknown,
            Target::process(None, None),
            "both read `unknown process`"
        );
        let mut sorted = vec![unknown.clone(), unnamed.clone(), flow.clone(), curl.clone()];
        sorted.sort();
        assert_eq!(sorted, [flow, curl, unnamed, unknown], "in string order");
        assert_eq!(serde_json::to_value(&eth0).unwrap(), "eth0");
    }
}
