//! Large downloads (predecessor 000): one flow whose inbound payload reaches the
//! threshold. Reported once per flow: the finding stays the same alert for as long as
//! the flow is supplied, and the alert ends, with the final size, once it is not.

use std::time::SystemTime;

use crate::{
    config::LargeDownloadConfig,
    model::alert::{AlertKind, AlertSource, Finding, FlowDetails, FlowKey, Target, Unit},
};

/// One flow as the backend tracks it. Supply a flow while it carries payload: one that
/// has gone quiet is left out, which is how its alert ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// `src` is the remote side that sends the payload, `dst` the local side.
    pub key: FlowKey,
    /// Payload bytes (headers excluded) from `src` to `dst` since `first_seen`.
    pub inbound_payload_bytes: u64,
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
}

pub fn large_download(flow: &FlowRecord, config: &LargeDownloadConfig) -> Option<Finding> {
    let threshold = config.bytes.get();
    if flow.inbound_payload_bytes < threshold {
        return None;
    }
    let key = flow.key;
    let duration = flow
        .last_seen
        .duration_since(flow.first_seen)
        .unwrap_or_default();
    let bytes = flow.inbound_payload_bytes as f64;
    let message = format!(
        "{} {} -> {}: {} in {:.1}s (threshold {})",
        key.protocol_name(),
        key.src,
        key.dst,
        Unit::Bytes.format(bytes),
        duration.as_secs_f64(),
        Unit::Bytes.format(threshold as f64)
    );
    Some(Finding {
        kind: AlertKind::LargeDownload,
        source: AlertSource::Ip(key.src.ip().to_canonical()),
        target: Target::Endpoint(key.dst),
        value: bytes,
        threshold: threshold as f64,
        unit: Unit::Bytes,
        message,
        flow: Some(FlowDetails {
            protocol: key.protocol,
            src: key.src.ip().to_canonical(),
            src_port: key.src.port(),
            dst: key.dst.ip().to_canonical(),
            dst_port: key.dst.port(),
            bytes: flow.inbound_payload_bytes,
            duration_secs: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
        }),
        connection: None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn flow(bytes: u64, secs: u64) -> FlowRecord {
        FlowRecord {
            key: FlowKey {
                protocol: 6,
                src: "203.0.113.5:443".parse().unwrap(),
                dst: "192.0.2.10:51234".parse().unwrap(),
            },
            inbound_payload_bytes: bytes,
            first_seen: UNIX_EPOCH + Duration::from_secs(100),
            last_seen: UNIX_EPOCH + Duration::from_secs(100 + secs),
        }
    }

    #[test]
    fn a_flow_over_the_threshold_is_reported_with_its_endpoints() {
        let f = large_download(&flow(25_300_000, 4), &LargeDownloadConfig::default()).unwrap();
        assert_eq!(
            (f.kind, f.source.to_string()),
            (AlertKind::LargeDownload, "203.0.113.5".into())
        );
        assert_eq!(f.target, "192.0.2.10:51234");
        assert_eq!(
            (f.value, f.threshold, f.unit),
            (25_300_000.0, 20_000_000.0, Unit::Bytes)
        );
        assert_eq!(
            f.message,
            "tcp 203.0.113.5:443 -> 192.0.2.10:51234: 25.3 MB in 4.0s (threshold 20.0 MB)"
        );
        let details = f.flow.unwrap();
        assert_eq!(
            (
                details.src_port,
                details.dst_port,
                details.bytes,
                details.duration_secs
            ),
            (443, 51234, 25_300_000, 4.0)
        );
        let json = serde_json::to_value(&details).unwrap();
        assert_eq!(json["protocol"], "tcp");
        assert_eq!(json["dst"], "192.0.2.10");
    }

    #[test]
    fn a_5_mb_download_is_not_reported() {
        assert!(large_download(&flow(5_000_000, 1), &LargeDownloadConfig::default()).is_none());
        assert!(large_download(&flow(19_999_999, 9), &LargeDownloadConfig::default()).is_none());
        assert!(large_download(&flow(20_000_000, 9), &LargeDownloadConfig::default()).is_some());
    }
}
