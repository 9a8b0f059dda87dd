//! Ban and unban events: mitigation's decisions, reported like alerts (stdout, log
//! files, webhooks).
//!
//! JSON: `{"type":"ban","kind":"ban","source":"192.0.2.9","address":"192.0.2.9",
//! "reason":"udp_flood","since":"...","until":"...","ban_secs":300.0,"dry_run":false,
//! "message":"..."}` and `{"type":"unban","kind":"unban",...,"reason":"expired",
//! "banned_at":"...","at":"...","dry_run":false,"message":"..."}`.

use std::{net::IpAddr, time::SystemTime};

use serde::Serialize;

use super::{AlertKind, AlertSource, rfc3339};
use crate::mitigate::{Ban, UnbanReason};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BanEvent {
    /// Always `ban`.
    pub kind: AlertKind,
    pub source: AlertSource,
    pub address: IpAddr,
    /// The flood alert that confirmed the ban.
    pub reason: AlertKind,
    #[serde(serialize_with = "rfc3339")]
    pub since: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub until: SystemTime,
    pub ban_secs: f64,
    /// Counted in the kernel, not dropped.
    pub dry_run: bool,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnbanEvent {
    /// Always `unban`.
    pub kind: AlertKind,
    pub source: AlertSource,
    pub address: IpAddr,
    /// `expired`, `operator` or `shutdown`.
    pub reason: UnbanReason,
    #[serde(serialize_with = "rfc3339")]
    pub banned_at: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    pub dry_run: bool,
    pub message: String,
}

fn mode(dry_run: bool) -> &'static str {
    if dry_run { " (dry run)" } else { "" }
}

impl BanEvent {
    pub fn new(ban: &Ban) -> Self {
        let secs = ban
            .until
            .duration_since(ban.since)
            .unwrap_or_default()
            .as_secs();
        Self {
            kind: AlertKind::Ban,
            source: AlertSource::Ip(ban.address),
            address: ban.address,
            reason: ban.reason,
            since: ban.since,
            until: ban.until,
            ban_secs: secs as f64,
            dry_run: ban.dry_run,
            message: format!(
                "banned for {} after a held {}, until {}{}",
                humantime::format_duration(std::time::Duration::from_secs(secs)),
                ban.reason,
                humantime::format_rfc3339_seconds(ban.until),
                mode(ban.dry_run)
            ),
        }
    }
}

impl UnbanEvent {
    pub fn new(ban: &Ban, reason: UnbanReason, at: SystemTime) -> Self {
        let why = match reason {
            UnbanReason::Expired => "its ban time ran out",
            UnbanReason::Operator => "an operator lifted it",
            UnbanReason::Shutdown => "the monitor stopped",
        };
        Self {
            kind: AlertKind::Unban,
            source: AlertSource::Ip(ban.address),
            address: ban.address,
            reason,
            banned_at: ban.since,
            at,
            dry_run: ban.dry_run,
            message: format!("ban ({}) ended: {why}{}", ban.reason, mode(ban.dry_run)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{
        alert::AlertEvent,
        sink::{self, Notice, fixtures::origin},
    };

    fn ban(dry_run: bool) -> Ban {
        Ban {
            address: "192.0.2.9".parse().unwrap(),
            reason: AlertKind::UdpFlood,
            since: UNIX_EPOCH + Duration::from_secs(1_756_933_752),
            until: UNIX_EPOCH + Duration::from_secs(1_756_934_052),
            dry_run,
        }
    }

    fn notice(event: AlertEvent) -> Notice {
        Notice::Event {
            event,
            traffic: None,
        }
    }

    #[test]
    fn ban_and_unban_records_carry_address_reason_until_and_dry_run() {
        let banned = notice(AlertEvent::Ban(BanEvent::new(&ban(true))));
        let record = sink::json_log::record(&banned, &origin());
        assert_eq!(record["type"], "ban");
        assert_eq!(record["kind"], "ban");
        assert_eq!(record["address"], "192.0.2.9");
        assert_eq!(record["remote_ip"], "192.0.2.9");
        assert_eq!(record["reason"], "udp_flood");
        assert_eq!(record["since"], "2025-09-03T21:09:12.000Z");
        assert_eq!(record["until"], "2025-09-03T21:14:12.000Z");
        assert_eq!(record["ban_secs"], 300.0);
        assert_eq!(record["dry_run"], true);

        let at = UNIX_EPOCH + Duration::from_secs(1_756_933_800);
        let lifted = notice(AlertEvent::Unban(UnbanEvent::new(
            &ban(false),
            UnbanReason::Operator,
            at,
        )));
        let record = sink::json_log::record(&lifted, &origin());
        assert_eq!(record["type"], "unban");
        assert_eq!(record["reason"], "operator");
        assert_eq!(record["dry_run"], false);
        assert_eq!(record["at"], "2025-09-03T21:10:00.000Z");
        assert_eq!(
            sink::log_file::line(&lifted, &origin()),
            "2025-09-03 21:10:00,000 INFO [UNBAN] 192.0.2.9 on eth0: ban (udp_flood) ended: an operator lifted it"
        );
        assert!(
            sink::log_file::line(&banned, &origin())
                .starts_with("2025-09-03 21:09:12,000 WARNING [BAN] 192.0.2.9 on eth0: banned for 5m after a held udp_flood")
        );
    }

    #[test]
    fn every_sink_renders_bans() {
        let banned = notice(AlertEvent::Ban(BanEvent::new(&ban(false))));
        assert_eq!(banned.headline(), "Banned: 192.0.2.9 (UDP flood)");
        for payload in [
            sink::discord::payload(&banned, &origin()),
            sink::slack::payload(&banned, &origin()),
            sink::teams::payload(&banned, &origin()),
            sink::generic::payload(&banned, &origin()),
        ] {
            let text = payload.to_string();
            assert!(text.contains("192.0.2.9"), "{text}");
            assert!(text.contains("udp_flood"), "{text}");
        }
        let line = crate::alert::human::render(&AlertEvent::Ban(BanEvent::new(&ban(true))), false);
        assert!(line.ends_with("BAN 192.0.2.9: banned for 5m after a held udp_flood, until 2025-09-03T21:14:12Z (dry run)"), "{line}");
    }
}
