//! Alerts as one line for a person, coloured by severity on a terminal:
//!
//! `21:09:12 ALERT [HIGH] syn_flood from 192.0.2.9 on eth0: SYN rate 2,000 SYN/s (threshold 500 SYN/s)`
//! `21:09:54 ENDED syn_flood from 192.0.2.9 on eth0 after 42s, peak 9,000 SYN/s (critical)`

use std::time::SystemTime;

use crate::model::alert::{AlertEvent, Severity};

const RESET: &str = "\x1b[0m";

fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "\x1b[36m",           // cyan
        Severity::Medium => "\x1b[33m",        // yellow
        Severity::High => "\x1b[1;31m",        // bold red
        Severity::Critical => "\x1b[1;97;41m", // bold white on red
    }
}

const ENDED: &str = "\x1b[32m"; // green

/// HH:MM:SS (UTC), as the stats lines show it.
fn clock(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.get(11..19).unwrap_or(&text).to_owned()
}

/// One line, without a newline; `ansi` adds the colours.
pub fn render(event: &AlertEvent, ansi: bool) -> String {
    let paint = |code: &str, text: String| {
        if ansi {
            format!("{code}{text}{RESET}")
        } else {
            text
        }
    };
    match event {
        AlertEvent::Alert(a) => {
            let tag = format!("ALERT [{}] {}", a.severity.as_str().to_uppercase(), a.kind);
            format!(
                "{} {} from {} on {}: {}",
                clock(a.started_at),
                paint(colour(a.severity), tag),
                a.source,
                a.target,
                a.message
            )
        }
        AlertEvent::AlertEnd(e) => format!(
            "{} {} from {} on {} after {}, peak {} ({})",
            clock(e.ended_at),
            paint(ENDED, format!("ENDED {}", e.kind)),
            e.source,
            e.target,
            humantime::format_duration(std::time::Duration::from_secs(
                e.duration_secs.round() as u64
            )),
            e.unit.format(e.peak_value),
            e.severity.as_str(),
        ),
        AlertEvent::Ban(b) => format!(
            "{} {} {}: {}",
            clock(b.since),
            paint(colour(Severity::High), "BAN".to_owned()),
            b.address,
            b.message
        ),
        AlertEvent::Unban(u) => format!(
            "{} {} {}: {}",
            clock(u.at),
            paint(ENDED, "UNBAN".to_owned()),
            u.address,
            u.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::model::alert::{Alert, AlertEnd, AlertKind, AlertSource, Target, Unit};

    fn alert(severity: Severity) -> AlertEvent {
        AlertEvent::Alert(Alert {
            kind: AlertKind::SynFlood,
            severity,
            source: AlertSource::Ip("192.0.2.9".parse().unwrap()),
            target: Target::Interface("eth0".into()),
            value: 2_000.0,
            threshold: 500.0,
            unit: Unit::SynPerSec,
            started_at: UNIX_EPOCH + Duration::from_secs(1_756_933_752),
            message: "SYN rate 2,000 SYN/s (threshold 500 SYN/s)".into(),
            flow: None,
            connection: None,
        })
    }

    #[test]
    fn plain_and_coloured_lines() {
        let plain = render(&alert(Severity::High), false);
        assert_eq!(
            plain,
            "21:09:12 ALERT [HIGH] syn_flood from 192.0.2.9 on eth0: SYN rate 2,000 SYN/s (threshold 500 SYN/s)"
        );
        assert!(!plain.contains('\x1b'));
        let coloured = render(&alert(Severity::Critical), true);
        assert!(
            coloured.contains("\x1b[1;97;41mALERT [CRITICAL] syn_flood\x1b[0m"),
            "{coloured:?}"
        );
        assert_ne!(
            render(&alert(Severity::Low), true),
            render(&alert(Severity::Medium), true)
        );

        let end = AlertEvent::AlertEnd(AlertEnd {
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
        });
        assert_eq!(
            render(&end, false),
            "00:00:42 ENDED pps_burst from many on eth0 after 42s, peak 600,000 pps (critical)"
        );
    }
}
