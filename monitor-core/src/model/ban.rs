//! Bans as data: one source's [`Ban`], and the ban and unban events mitigation's
//! decisions are reported as, like alerts (stdout, log files, webhooks).
//!
//! JSON: `{"type":"ban","kind":"ban","source":"192.0.2.9","address":"192.0.2.9",
//! "reason":"udp_flood","since":"...","until":"...","ban_secs":300.0,"dry_run":false,
//! "message":"..."}` and `{"type":"unban","kind":"unban",...,"reason":"expired",
//! "banned_at":"...","at":"...","dry_run":false,"message":"..."}`.

use std::{net::IpAddr, time::SystemTime};

use serde::Serialize;

use super::{
    alert::{AlertKind, AlertSource},
    format::rfc3339,
};

/// One source's ban.
#[derive(Clone, Debug, PartialEq)]
pub struct Ban {
    pub address: IpAddr,
    /// The flood alert that confirmed it.
    pub reason: AlertKind,
    pub since: SystemTime,
    pub until: SystemTime,
    /// Placed in dry-run mode: counted in the kernel, not dropped.
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnbanReason {
    /// The ban time ran out.
    Expired,
    /// `monitor bans unban`.
    Operator,
    /// The monitor stopped; its program, and the ban with it, left the interface.
    Shutdown,
}

impl UnbanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Operator => "operator",
            Self::Shutdown => "shutdown",
        }
    }
}

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
