//! `--json-log PATH`: one JSON object per line for each alert, end and capture. The
//! object is the alert as the stdout stream shows it (`type`, `kind`, `severity`,
//! `source`, `target`, `value`, ...), plus where it happened (`server`, `iface`), the
//! source's traffic (`pps`, `bps`: null when not known) and the fields of predecessor
//! 002's records: `timestamp` (`YYYY-MM-DD HH:MM:SS`, UTC), `pid` (the process of a
//! connection alert; null for packet alerts: packets have no process), `local_ip`,
//! `local_port`, `remote_ip`, `remote_port` (null where they do not apply) and
//! `reason`; connection alerts add `process` and `connections`. docs/alerting.md has
//! the schema. The generic webhook POSTs the same object.

use serde_json::{Map, Value, json};

use super::{Notice, Origin, timestamp_seconds, title};
use crate::model::{
    alert::{AlertEvent, AlertSource, FlowDetails},
    connection::ConnectionDetails,
};

/// The record for `notice`.
pub fn record(notice: &Notice, origin: &Origin) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), notice.type_name().into());
    out.insert(
        "time".into(),
        humantime::format_rfc3339_millis(notice.time())
            .to_string()
            .into(),
    );
    out.insert("timestamp".into(), timestamp_seconds(notice.time()).into());
    out.insert("server".into(), origin.server_name.clone().into());
    out.insert("iface".into(), origin.iface.clone().into());

    let mut flow: Option<&FlowDetails> = None;
    let mut connection: Option<&ConnectionDetails> = None;
    let mut traffic = None;
    match notice {
        Notice::Event { event, traffic: t } => {
            if let Ok(Value::Object(mut fields)) = serde_json::to_value(event) {
                fields.shift_remove("type");
                out.append(&mut fields);
            }
            (flow, connection) = match event {
                AlertEvent::Alert(a) => (a.flow.as_ref(), a.connection.as_ref()),
                AlertEvent::AlertEnd(e) => (e.flow.as_ref(), e.connection.as_ref()),
                AlertEvent::Ban(_) | AlertEvent::Unban(_) => (None, None),
            };
            traffic = *t;
        }
        Notice::Capture(c) => {
            out.insert("kind".into(), c.kind.as_str().into());
            out.insert("source".into(), c.source.to_string().into());
            out.insert("path".into(), c.path.display().to_string().into());
            out.insert("packets".into(), c.packets.into());
        }
    }
    out.insert("pps".into(), json!(traffic.map(|t| t.pps)));
    out.insert("bps".into(), json!(traffic.map(|t| t.bits_per_sec)));

    // Predecessor 002's connection fields: a connection alert's socket; a flow's two
    // ends; otherwise the source as the remote end, and no local end (the alert is
    // about the whole interface).
    let socket = connection.and_then(|c| c.socket.as_ref());
    let (local_ip, local_port, remote_ip, remote_port) = match (flow, notice.source()) {
        _ if connection.is_some() => match socket {
            Some(s) => (
                json!(s.local_ip.to_string()),
                json!(s.local_port),
                json!(s.remote_ip.to_string()),
                json!(s.remote_port),
            ),
            None => (Value::Null, Value::Null, Value::Null, Value::Null),
        },
        (Some(f), _) => (
            json!(f.dst.to_string()),
            json!(f.dst_port),
            json!(f.src.to_string()),
            json!(f.src_port),
        ),
        (None, AlertSource::Ip(ip)) => {
            (Value::Null, Value::Null, json!(ip.to_string()), Value::Null)
        }
        (None, AlertSource::Many | AlertSource::Process(_)) => {
            (Value::Null, Value::Null, Value::Null, Value::Null)
        }
    };
    out.insert("pid".into(), json!(connection.and_then(|c| c.pid)));
    if let Some(c) = connection {
        // Predecessor 002's `connections` (its excessive-connections count), and the
        // process name it did not record.
        out.insert("process".into(), json!(c.process));
        out.insert("connections".into(), json!(c.connections));
    }
    out.insert("local_ip".into(), local_ip);
    out.insert("local_port".into(), local_port);
    out.insert("remote_ip".into(), remote_ip);
    out.insert("remote_port".into(), remote_port);
    let reason = match notice {
        Notice::Capture(_) => Some(format!("Capture written ({})", title(notice.kind()))),
        // A ban's own `reason` (the alert kind that confirmed it; for an unban,
        // expired or operator) stands.
        Notice::Event {
            event: AlertEvent::Ban(_) | AlertEvent::Unban(_),
            ..
        } => None,
        Notice::Event { .. } => Some(title(notice.kind()).to_owned()),
    };
    if let Some(reason) = reason {
        out.insert("reason".into(), reason.into());
    }
    Value::Object(out)
}

/// The record as one line, without its newline.
pub fn line(notice: &Notice, origin: &Origin) -> String {
    record(notice, origin).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::alert::Severity, sink::fixtures::*};

    #[test]
    fn alert_record_has_ours_and_the_predecessors_fields() {
        let text = line(&alert(Severity::High), &origin());
        assert!(!text.contains('\n'));
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "type",
                "time",
                "timestamp",
                "server",
                "iface",
                "kind",
                "severity",
                "source",
                "target",
                "value",
                "threshold",
                "unit",
                "started_at",
                "message",
                "pps",
                "bps",
                "pid",
                "local_ip",
                "local_port",
                "remote_ip",
                "remote_port",
                "reason"
            ]
        );
        assert_eq!(v["type"], "alert");
        assert_eq!(v["time"], "2025-09-03T21:09:12.012Z");
        assert_eq!(v["timestamp"], "2025-09-03 21:09:12");
        assert_eq!(v["server"], "AWS, France");
        assert_eq!(v["kind"], "syn_flood");
        assert_eq!(v["severity"], "high");
        assert_eq!(v["value"], 52_000.0);
        assert_eq!(v["pps"], 52_310.4);
        assert_eq!(v["bps"], 26_800_000.0);
        assert_eq!(v["pid"], Value::Null);
        assert_eq!(v["local_ip"], Value::Null);
        assert_eq!(v["remote_ip"], "192.0.2.9");
        assert_eq!(v["remote_port"], Value::Null);
        assert_eq!(v["reason"], "SYN flood");
    }

    #[test]
    fn a_flow_fills_both_ends() {
        let v = record(&download(), &origin());
        assert_eq!(v["local_ip"], "192.0.2.10");
        assert_eq!(v["local_port"], 51_234);
        assert_eq!(v["remote_ip"], "198.51.100.7");
        assert_eq!(v["remote_port"], 443);
        assert_eq!(v["flow"]["bytes"], 25_000_046);
        assert_eq!(v["pps"], Value::Null);
        assert_eq!(v["reason"], "Large download");
    }

    /// The records of predecessor 002, field for field (and ours around them).
    #[test]
    fn connection_records_carry_the_predecessors_fields() {
        let v = record(&blocklisted_connection(), &origin());
        assert_eq!(v["timestamp"], "2025-08-22 14:35:10");
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["local_ip"], "192.168.1.10");
        assert_eq!(v["local_port"], 50_544);
        assert_eq!(v["remote_ip"], "104.22.55.228");
        assert_eq!(v["remote_port"], 80);
        assert_eq!(v["reason"], "Blocklisted connection");
        assert_eq!(v["process"], "curl");
        assert_eq!(v["connections"], 1);
        assert_eq!(v["kind"], "blocklisted_connection");
        assert_eq!(v["connection"]["socket"]["state"], "established");

        let v = record(&excessive_connections(), &origin());
        assert_eq!(v["timestamp"], "2025-08-22 14:40:20");
        assert_eq!(v["pid"], 5678);
        assert_eq!(v["connections"], 45);
        assert_eq!(v["reason"], "Excessive connections");
        assert_eq!(v["source"], "pid 5678");
        for key in ["local_ip", "local_port", "remote_ip", "remote_port"] {
            assert_eq!(v[key], Value::Null, "{key}");
        }
    }

    #[test]
    fn end_and_capture_records() {
        let v = record(&end(), &origin());
        assert_eq!(v["type"], "alert_end");
        assert_eq!(v["timestamp"], "2025-09-03 21:09:54");
        assert_eq!(v["peak_value"], 600_000.0);
        assert_eq!(v["remote_ip"], Value::Null);
        let v = record(&capture(), &origin());
        assert_eq!(v["type"], "capture");
        assert_eq!(
            v["path"],
            "captures/syn_flood_192.0.2.9_20250903T210912Z.pcap"
        );
        assert_eq!(v["packets"], 10_000);
        assert_eq!(v["source"], "192.0.2.9");
        assert_eq!(v["reason"], "Capture written (SYN flood)");
    }
}
