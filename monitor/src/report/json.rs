//! JSON lines: one object per line, each with a `"type"` field. The schema is in
//! docs/output.md; tests parse these lines.

use std::{io::Write, time::Duration};

use log::error;
use monitor_common::GlobalCounters;
use serde::Serialize;
use serde_json::json;

use super::{Reporter, RunInfo};
use crate::{
    model::{alert::AlertEvent, capture::CaptureDone, format::now_rfc3339},
    stats::IntervalStats,
};

/// Cumulative totals, flattened to the names docs/output.md documents.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    pub other: u64,
    pub non_ip: u64,
    pub malformed: u64,
    pub tcp_bytes: u64,
    pub udp_bytes: u64,
    pub icmp_bytes: u64,
    pub other_bytes: u64,
    pub non_ip_bytes: u64,
    pub malformed_bytes: u64,
    pub ipv4: u64,
    pub ipv4_bytes: u64,
    pub ipv6: u64,
    pub ipv6_bytes: u64,
    pub syn: u64,
    pub syn_ack: u64,
    pub rst: u64,
    pub fin: u64,
    pub fragments: u64,
    /// Frames mitigation dropped (in dry-run: would have dropped).
    pub dropped: u64,
    pub dropped_bytes: u64,
}

impl From<&GlobalCounters> for Totals {
    fn from(c: &GlobalCounters) -> Self {
        Self {
            packets: c.total.packets,
            bytes: c.total.bytes,
            tcp: c.tcp.packets,
            udp: c.udp.packets,
            icmp: c.icmp.packets,
            other: c.other.packets,
            non_ip: c.non_ip.packets,
            malformed: c.malformed.packets,
            tcp_bytes: c.tcp.bytes,
            udp_bytes: c.udp.bytes,
            icmp_bytes: c.icmp.bytes,
            other_bytes: c.other.bytes,
            non_ip_bytes: c.non_ip.bytes,
            malformed_bytes: c.malformed.bytes,
            ipv4: c.ipv4.packets,
            ipv4_bytes: c.ipv4.bytes,
            ipv6: c.ipv6.packets,
            ipv6_bytes: c.ipv6.bytes,
            syn: c.syn,
            syn_ack: c.syn_ack,
            rst: c.rst,
            fin: c.fin,
            fragments: c.fragments,
            dropped: c.dropped.packets,
            dropped_bytes: c.dropped.bytes,
        }
    }
}

pub struct JsonReporter<W: Write> {
    out: W,
}

impl<W: Write> JsonReporter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    fn emit(&mut self, value: &serde_json::Value) {
        let written = serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(err) = written {
            error!("failed to write to stdout: {err}");
        }
    }
}

impl<W: Write> Reporter for JsonReporter<W> {
    fn start(&mut self, run: &RunInfo) {
        self.emit(&json!({
            "type": "start",
            "time": now_rfc3339(),
            "iface": run.iface,
            "backend": run.backend,
            "description": run.description,
            "interval_secs": run.interval.as_secs_f64(),
        }));
    }

    fn interval(&mut self, run: &RunInfo, stats: &IntervalStats) {
        let mut line = json!({
            "type": "stats",
            "time": now_rfc3339(),
            "iface": run.iface,
            "backend": run.backend,
            "interval_secs": (stats.seconds * 1000.0).round() / 1000.0,
            "totals": Totals::from(&stats.totals),
            "rates": stats.rates,
            "top_sources": stats.top_sources,
            "mitigation": run.mitigation.as_str(),
            "dropped_sources": stats.dropped_sources,
        });
        // Only a backend with a capture buffer (pcap) can lose packets before counting.
        if let (Some(drops), Some(fields)) = (stats.capture_drops, line.as_object_mut()) {
            fields.insert("capture_drops".into(), json!(drops));
        }
        self.emit(&line);
    }

    fn alerts(&mut self, run: &RunInfo, events: &[AlertEvent]) {
        for event in events {
            let mut value = match serde_json::to_value(event) {
                Ok(value) => value,
                Err(err) => {
                    error!("failed to encode an alert: {err}");
                    continue;
                }
            };
            // Same envelope as the other lines: `type` first, then time and interface.
            if let Some(fields) = value.as_object_mut() {
                let mut line = serde_json::Map::new();
                line.insert(
                    "type".into(),
                    fields.shift_remove("type").unwrap_or_default(),
                );
                line.insert("time".into(), now_rfc3339().into());
                line.insert("iface".into(), run.iface.clone().into());
                line.append(fields);
                value = line.into();
            }
            self.emit(&value);
        }
    }

    fn capture(&mut self, run: &RunInfo, done: &CaptureDone) {
        let mut line = serde_json::Map::new();
        line.insert("type".into(), "capture".into());
        line.insert("time".into(), now_rfc3339().into());
        line.insert("iface".into(), run.iface.clone().into());
        if let Ok(serde_json::Value::Object(mut fields)) = serde_json::to_value(done) {
            line.append(&mut fields);
        }
        self.emit(&line.into());
    }

    fn finish(&mut self, run: &RunInfo, totals: &GlobalCounters, elapsed: Duration) {
        self.emit(&json!({
            "type": "final",
            "time": now_rfc3339(),
            "iface": run.iface,
            "backend": run.backend,
            "duration_secs": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "totals": Totals::from(totals),
            "mitigation": run.mitigation.as_str(),
        }));
    }
}
