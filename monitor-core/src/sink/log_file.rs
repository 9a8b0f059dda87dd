//! `--log PATH`: one timestamped line per alert, end and capture, appended, in the
//! shape of predecessor 003's log (Python's `%(asctime)s %(levelname)s %(message)s`),
//! times in UTC:
//!
//! ```text
//! 2025-09-03 21:09:12,012 WARNING [CRITICAL] syn_flood from 192.0.2.9 on eth0: SYN rate 52,000 SYN/s (threshold 500 SYN/s) | 52,310 pps, 26.8 Mbit/s
//! 2025-09-03 21:09:54,012 INFO [ENDED] pps_burst from many on eth0 after 42s, peak 600,000 pps (threshold 50,000 pps), critical at worst
//! 2025-09-03 21:09:22,500 INFO [CAPTURE] syn_flood from 192.0.2.9: 10,000 packets written to captures/syn_flood_192.0.2.9_20250903T210912Z.pcap
//! ```

use super::{Notice, Origin, timestamp_millis};
use crate::model::{
    alert::AlertEvent,
    format::{bitrate, thousands},
};

/// The line for `notice`, without its newline.
pub fn line(notice: &Notice, origin: &Origin) -> String {
    let time = timestamp_millis(notice.time());
    let (kind, source) = (notice.kind(), notice.source());
    match notice {
        Notice::Event {
            event: AlertEvent::Alert(a),
            traffic,
        } => {
            let mut line = format!(
                "{time} WARNING [{}] {kind} from {source} on {}: {}",
                a.severity.as_str().to_uppercase(),
                a.target,
                a.message
            );
            if let Some(t) = traffic {
                line.push_str(&format!(
                    " | {} pps, {}",
                    thousands(t.pps.max(0.0).round() as u64),
                    bitrate(t.bits_per_sec.max(0.0))
                ));
            }
            line
        }
        Notice::Event {
            event: AlertEvent::AlertEnd(e),
            ..
        } => format!(
            "{time} INFO [ENDED] {kind} from {source} on {} after {}",
            e.target,
            notice.summary().trim_start_matches("ended after ")
        ),
        Notice::Event {
            event: AlertEvent::Ban(b),
            ..
        } => format!(
            "{time} WARNING [BAN] {source} on {}: {}",
            origin.iface, b.message
        ),
        Notice::Event {
            event: AlertEvent::Unban(u),
            ..
        } => format!(
            "{time} INFO [UNBAN] {source} on {}: {}",
            origin.iface, u.message
        ),
        Notice::Capture(_) => format!(
            "{time} INFO [CAPTURE] {kind} from {source} on {}: {}",
            origin.iface,
            notice.summary()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::alert::Severity, sink::fixtures::*};

    #[test]
    fn lines_as_the_predecessor_writes_them() {
        assert_eq!(
            line(&alert(Severity::Critical), &origin()),
            "2025-09-03 21:09:12,012 WARNING [CRITICAL] syn_flood from 192.0.2.9 on eth0: SYN rate 52,000 SYN/s (threshold 500 SYN/s) | 52,310 pps, 26.8 Mbit/s"
        );
        assert_eq!(
            line(&end(), &origin()),
            "2025-09-03 21:09:54,012 INFO [ENDED] pps_burst from many on eth0 after 42s, peak 600,000 pps (threshold 50,000 pps), critical at worst"
        );
        assert_eq!(
            line(&capture(), &origin()),
            "2025-09-03 21:09:22,500 INFO [CAPTURE] syn_flood from 192.0.2.9 on eth0: 10,000 packets written to captures/syn_flood_192.0.2.9_20250903T210912Z.pcap"
        );
        assert!(!line(&download(), &origin()).contains('\n'));
    }
}
