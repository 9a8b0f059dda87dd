//! What alerts look like where they go besides stdout: a log file, a JSON-lines file
//! and webhooks (Discord, Slack, Teams, a generic JSON POST). Every sink gets the same
//! [`Notice`]; the payload builders (`log_file`, `json_log`, `discord`, `slack`,
//! `teams`, `generic`) are pure functions of a notice and its [`Origin`].
//! `monitor::delivery` does the I/O: a bounded queue and worker per sink, so a slow
//! webhook never holds up the polling loop or another sink.

use std::{
    net::IpAddr,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use crate::model::{
    alert::{AlertEvent, AlertKind, AlertSource, Severity},
    format::{bitrate, thousands},
};

pub mod discord;
pub mod generic;
pub mod json_log;
pub mod log_file;
pub mod slack;
pub mod teams;

/// Where the monitor runs: named in every message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `alerting.server_name`, or the hostname.
    pub server_name: String,
    pub iface: String,
}

/// What the alert's source sent in the interval the alert was raised in: the source's
/// own rates, or the host's for source `many`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traffic {
    pub pps: f64,
    pub bits_per_sec: f64,
}

/// A pcap file written for an alert.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureNote {
    pub kind: AlertKind,
    pub source: AlertSource,
    pub path: PathBuf,
    pub packets: u64,
    pub time: SystemTime,
}

/// What every sink receives.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a few notices a second at most, each moved once into each sink's queue"
)]
pub enum Notice {
    Event {
        event: AlertEvent,
        traffic: Option<Traffic>,
    },
    Capture(CaptureNote),
}

impl Notice {
    /// When it happened: an alert's start, an end's end, a capture's write.
    pub fn time(&self) -> SystemTime {
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                ..
            } => a.started_at,
            Self::Event {
                event: AlertEvent::AlertEnd(e),
                ..
            } => e.ended_at,
            Self::Event {
                event: AlertEvent::Ban(b),
                ..
            } => b.since,
            Self::Event {
                event: AlertEvent::Unban(u),
                ..
            } => u.at,
            Self::Capture(c) => c.time,
        }
    }

    pub fn kind(&self) -> AlertKind {
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                ..
            } => a.kind,
            Self::Event {
                event: AlertEvent::AlertEnd(e),
                ..
            } => e.kind,
            Self::Event {
                event: AlertEvent::Ban(b),
                ..
            } => b.kind,
            Self::Event {
                event: AlertEvent::Unban(u),
                ..
            } => u.kind,
            Self::Capture(c) => c.kind,
        }
    }

    pub fn source(&self) -> AlertSource {
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                ..
            } => a.source,
            Self::Event {
                event: AlertEvent::AlertEnd(e),
                ..
            } => e.source,
            Self::Event {
                event: AlertEvent::Ban(b),
                ..
            } => b.source,
            Self::Event {
                event: AlertEvent::Unban(u),
                ..
            } => u.source,
            Self::Capture(c) => c.source,
        }
    }

    /// The `type` of its JSON record: `alert`, `alert_end`, `ban`, `unban` or
    /// `capture`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Event {
                event: AlertEvent::Alert(_),
                ..
            } => "alert",
            Self::Event {
                event: AlertEvent::AlertEnd(_),
                ..
            } => "alert_end",
            Self::Event {
                event: AlertEvent::Ban(_),
                ..
            } => "ban",
            Self::Event {
                event: AlertEvent::Unban(_),
                ..
            } => "unban",
            Self::Capture(_) => "capture",
        }
    }

    /// One line for a title: `CRITICAL: SYN flood from 192.0.2.9`,
    /// `Ended: SYN flood from 192.0.2.9`, `Capture written: SYN flood from 192.0.2.9`.
    pub fn headline(&self) -> String {
        let what = format!("{} from {}", title(self.kind()), self.source());
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                ..
            } => format!("{}: {what}", a.severity.as_str().to_uppercase()),
            Self::Event {
                event: AlertEvent::AlertEnd(_),
                ..
            } => format!("Ended: {what}"),
            Self::Event {
                event: AlertEvent::Ban(b),
                ..
            } => format!(
                "{}: {} ({})",
                title(AlertKind::Ban),
                self.source(),
                title(b.reason)
            ),
            Self::Event {
                event: AlertEvent::Unban(_),
                ..
            } => format!("{}: {}", title(AlertKind::Unban), self.source()),
            Self::Capture(_) => format!("Capture written: {what}"),
        }
    }

    /// The sentence under the headline.
    pub fn summary(&self) -> String {
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                ..
            } => a.message.clone(),
            Self::Event {
                event: AlertEvent::AlertEnd(e),
                ..
            } => format!(
                "ended after {}, peak {} (threshold {}), {} at worst",
                duration(e.duration_secs),
                e.unit.format(e.peak_value),
                e.unit.format(e.threshold),
                e.severity.as_str()
            ),
            Self::Event {
                event: AlertEvent::Ban(b),
                ..
            } => b.message.clone(),
            Self::Event {
                event: AlertEvent::Unban(u),
                ..
            } => u.message.clone(),
            Self::Capture(c) => format!(
                "{} packets written to {}",
                thousands(c.packets),
                c.path.display()
            ),
        }
    }

    /// Severity for colours: an alert's, none for an end or a capture.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                ..
            } => Some(a.severity),
            _ => None,
        }
    }

    /// Labelled facts for the chat sinks, in order, at most 10 (Slack's limit for
    /// section fields): server, interface, kind, severity, source, target, value,
    /// then pps and bandwidth where known, then the flow or the capture file.
    pub fn facts(&self, origin: &Origin) -> Vec<(&'static str, String)> {
        let mut facts = vec![
            ("Server", origin.server_name.clone()),
            ("Interface", origin.iface.clone()),
            ("Kind", self.kind().as_str().to_owned()),
        ];
        match self {
            Self::Event {
                event: AlertEvent::Alert(a),
                traffic,
            } => {
                facts.push(("Severity", a.severity.as_str().to_owned()));
                facts.push(("Source", a.source.to_string()));
                facts.push(("Target", a.target.to_string()));
                facts.push((
                    "Value",
                    format!(
                        "{} (threshold {})",
                        a.unit.format(a.value),
                        a.unit.format(a.threshold)
                    ),
                ));
                if let Some(t) = traffic {
                    facts.push(("PPS", thousands(t.pps.max(0.0).round() as u64)));
                    facts.push(("Bandwidth", bitrate(t.bits_per_sec.max(0.0))));
                }
                if let Some(flow) = &a.flow {
                    facts.push(("Flow", flow_text(flow)));
                }
                if let Some(connection) = &a.connection {
                    facts.extend(connection_facts(connection));
                }
            }
            Self::Event {
                event: AlertEvent::AlertEnd(e),
                ..
            } => {
                facts.push(("Severity", format!("{} at worst", e.severity.as_str())));
                facts.push(("Source", e.source.to_string()));
                facts.push(("Target", e.target.to_string()));
                facts.push((
                    "Peak",
                    format!(
                        "{} (threshold {})",
                        e.unit.format(e.peak_value),
                        e.unit.format(e.threshold)
                    ),
                ));
                facts.push(("Duration", duration(e.duration_secs)));
                if let Some(flow) = &e.flow {
                    facts.push(("Flow", flow_text(flow)));
                }
                if let Some(connection) = &e.connection {
                    facts.extend(connection_facts(connection));
                }
            }
            Self::Event {
                event: AlertEvent::Ban(b),
                ..
            } => {
                facts.push(("Source", b.source.to_string()));
                facts.push(("Reason", b.reason.as_str().to_owned()));
                facts.push(("Until", timestamp_seconds(b.until)));
                facts.push(("Dry run", b.dry_run.to_string()));
            }
            Self::Event {
                event: AlertEvent::Unban(u),
                ..
            } => {
                facts.push(("Source", u.source.to_string()));
                facts.push(("Reason", u.reason.as_str().to_owned()));
                facts.push(("Dry run", u.dry_run.to_string()));
            }
            Self::Capture(c) => {
                facts.push(("Source", c.source.to_string()));
                facts.push(("Packets", thousands(c.packets)));
                facts.push(("File", c.path.display().to_string()));
            }
        }
        facts.truncate(10);
        facts
    }
}

fn flow_text(flow: &crate::model::alert::FlowDetails) -> String {
    let endpoint = |ip: IpAddr, port: u16| std::net::SocketAddr::new(ip, port).to_string();
    format!(
        "{} {} → {}, {:.1} MB in {}",
        flow.key().protocol_name(),
        endpoint(flow.src, flow.src_port),
        endpoint(flow.dst, flow.dst_port),
        flow.bytes as f64 / 1e6,
        duration(flow.duration_secs)
    )
}

/// The process (`curl (pid 1234)`) and, for a single connection, its socket.
fn connection_facts(
    c: &crate::model::connection::ConnectionDetails,
) -> Vec<(&'static str, String)> {
    let process = match (c.pid, &c.process) {
        (Some(pid), Some(name)) => format!("{name} (pid {pid})"),
        (Some(pid), None) => format!("pid {pid}"),
        (None, _) => "unknown".to_owned(),
    };
    let mut facts = vec![("Process", process)];
    if let Some(socket) = &c.socket {
        facts.push(("Connection", socket.to_string()));
    }
    facts
}

fn duration(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0.0).round() as u64)).to_string()
}

/// A kind as words, for titles and predecessor 002's `reason`.
pub fn title(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::SynFlood => "SYN flood",
        AlertKind::UdpFlood => "UDP flood",
        AlertKind::IcmpFlood => "ICMP flood",
        AlertKind::PpsBurst => "Packet-rate burst",
        AlertKind::Bandwidth => "Bandwidth",
        AlertKind::Spike => "Traffic spike",
        AlertKind::PortScan => "Port scan",
        AlertKind::LargeDownload => "Large download",
        AlertKind::Blocklisted => "Blocklisted address",
        AlertKind::BlocklistedConnection => "Blocklisted connection",
        AlertKind::ExcessiveConnections => "Excessive connections",
        AlertKind::Ban => "Banned",
        AlertKind::Unban => "Unbanned",
    }
}

/// `2025-08-22 14:35:10` (UTC), predecessor 002's timestamp.
pub fn timestamp_seconds(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.trim_end_matches('Z').replacen('T', " ", 1)
}

/// `2025-09-03 21:08:44,671` (UTC), the log line timestamp of predecessor 003.
pub fn timestamp_millis(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_millis(time).to_string();
    text.trim_end_matches('Z')
        .replacen('T', " ", 1)
        .replacen('.', ",", 1)
}

/// At most `max` characters (Unicode scalar values): a longer text is cut on a
/// character boundary and ends with `…` (which counts).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod ban_tests;

#[cfg(test)]
pub(crate) mod fixtures {
    //! Alerts, ends and captures for the payload tests.
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::model::alert::{Alert, AlertEnd, FlowDetails, Target, Unit};

    pub(crate) fn origin() -> Origin {
        Origin {
            server_name: "AWS, France".into(),
            iface: "eth0".into(),
        }
    }

    pub(crate) fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    pub(crate) fn alert(severity: Severity) -> Notice {
        Notice::Event {
            event: AlertEvent::Alert(Alert {
                kind: AlertKind::SynFlood,
                severity,
                source: AlertSource::Ip("192.0.2.9".parse().unwrap()),
                target: Target::Interface("eth0".into()),
                value: 52_000.0,
                threshold: 500.0,
                unit: Unit::SynPerSec,
                started_at: at(1_756_933_752_012),
                message: "SYN rate 52,000 SYN/s (threshold 500 SYN/s)".into(),
                flow: None,
                connection: None,
            }),
            traffic: Some(Traffic {
                pps: 52_310.4,
                bits_per_sec: 26_800_000.0,
            }),
        }
    }

    pub(crate) fn download() -> Notice {
        let flow = FlowDetails {
            protocol: 6,
            src: "198.51.100.7".parse().unwrap(),
            src_port: 443,
            dst: "192.0.2.10".parse().unwrap(),
            dst_port: 51_234,
            bytes: 25_000_046,
            duration_secs: 3.2,
        };
        Notice::Event {
            event: AlertEvent::Alert(Alert {
                kind: AlertKind::LargeDownload,
                severity: Severity::Low,
                source: AlertSource::Ip(flow.src),
                target: Target::Endpoint("192.0.2.10:51234".parse().unwrap()),
                value: 25_000_046.0,
                threshold: 20_000_000.0,
                unit: Unit::Bytes,
                started_at: at(1_756_933_752_012),
                message: "25.0 MB in one flow".into(),
                flow: Some(flow),
                connection: None,
            }),
            traffic: None,
        }
    }

    pub(crate) fn end() -> Notice {
        Notice::Event {
            event: AlertEvent::AlertEnd(AlertEnd {
                kind: AlertKind::PpsBurst,
                severity: Severity::Critical,
                source: AlertSource::Many,
                target: Target::Interface("eth0".into()),
                peak_value: 600_000.0,
                threshold: 50_000.0,
                unit: Unit::Pps,
                started_at: at(1_756_933_752_012),
                ended_at: at(1_756_933_794_012),
                duration_secs: 42.0,
                flow: None,
                connection: None,
            }),
            traffic: None,
        }
    }

    /// `curl` (pid 4242) connected to a blocklisted address.
    pub(crate) fn blocklisted_connection() -> Notice {
        use crate::model::connection::{ConnectionDetails, SocketDetails, SocketState, Transport};
        Notice::Event {
            event: AlertEvent::Alert(Alert {
                kind: AlertKind::BlocklistedConnection,
                severity: Severity::High,
                source: AlertSource::Ip("104.22.55.228".parse().unwrap()),
                target: Target::process(Some(4242), Some("curl")),
                value: 1.0,
                threshold: 1.0,
                unit: Unit::Connections,
                started_at: at(1_755_873_310_000),
                message: "curl (pid 4242) has a connection to blocklisted 104.22.55.228".into(),
                flow: None,
                connection: Some(ConnectionDetails {
                    pid: Some(4242),
                    process: Some("curl".into()),
                    connections: 1,
                    socket: Some(SocketDetails {
                        protocol: Transport::Tcp,
                        local_ip: "192.168.1.10".parse().unwrap(),
                        local_port: 50_544,
                        remote_ip: "104.22.55.228".parse().unwrap(),
                        remote_port: 80,
                        state: SocketState::Established,
                    }),
                }),
            }),
            traffic: None,
        }
    }

    /// Pid 5678 holding 45 connections.
    pub(crate) fn excessive_connections() -> Notice {
        use crate::model::connection::ConnectionDetails;
        Notice::Event {
            event: AlertEvent::Alert(Alert {
                kind: AlertKind::ExcessiveConnections,
                severity: Severity::Medium,
                source: AlertSource::Process(5678),
                target: Target::process(Some(5678), Some("python3")),
                value: 45.0,
                threshold: 20.0,
                unit: Unit::Connections,
                started_at: at(1_755_873_620_000),
                message: "python3 (pid 5678) holds 45 connections (more than 20)".into(),
                flow: None,
                connection: Some(ConnectionDetails {
                    pid: Some(5678),
                    process: Some("python3".into()),
                    connections: 45,
                    socket: None,
                }),
            }),
            traffic: None,
        }
    }

    pub(crate) fn capture() -> Notice {
        Notice::Capture(CaptureNote {
            kind: AlertKind::SynFlood,
            source: AlertSource::Ip("192.0.2.9".parse().unwrap()),
            path: "captures/syn_flood_192.0.2.9_20250903T210912Z.pcap".into(),
            packets: 10_000,
            time: at(1_756_933_762_500),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{fixtures::*, *};

    #[test]
    fn timestamps_in_the_predecessors_formats() {
        let t = at(1_756_933_752_012);
        assert_eq!(timestamp_seconds(t), "2025-09-03 21:09:12");
        assert_eq!(timestamp_millis(t), "2025-09-03 21:09:12,012");
    }

    #[test]
    fn truncation_cuts_on_character_boundaries() {
        assert_eq!(truncate("short", 5), "short");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("🚨🚨🚨", 2).chars().count(), 2);
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn headlines_and_facts() {
        assert_eq!(
            alert(Severity::Critical).headline(),
            "CRITICAL: SYN flood from 192.0.2.9"
        );
        assert_eq!(end().headline(), "Ended: Packet-rate burst from many");
        assert_eq!(
            capture().headline(),
            "Capture written: SYN flood from 192.0.2.9"
        );
        let facts = alert(Severity::High).facts(&origin());
        let names: Vec<_> = facts.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "Server",
                "Interface",
                "Kind",
                "Severity",
                "Source",
                "Target",
                "Value",
                "PPS",
                "Bandwidth"
            ]
        );
        assert_eq!(facts[7].1, "52,310");
        assert_eq!(facts[8].1, "26.8 Mbit/s");
        let flow = download().facts(&origin());
        assert_eq!(
            flow.last().unwrap().1,
            "tcp 198.51.100.7:443 → 192.0.2.10:51234, 25.0 MB in 3s"
        );
        let facts = blocklisted_connection().facts(&origin());
        let tail: Vec<_> = facts.iter().rev().take(2).rev().cloned().collect();
        assert_eq!(
            tail,
            [
                ("Process", "curl (pid 4242)".to_owned()),
                (
                    "Connection",
                    "tcp 192.168.1.10:50544 → 104.22.55.228:80 (established)".to_owned()
                )
            ]
        );
        assert_eq!(
            excessive_connections().headline(),
            "MEDIUM: Excessive connections from pid 5678"
        );
    }
}
