//! Ban and unban events through every sink: JSON records, log lines, webhook payloads
//! and the console line.

use std::time::{Duration, UNIX_EPOCH};

use crate::{
    model::{
        alert::{AlertEvent, AlertKind},
        ban::{Ban, BanEvent, UnbanEvent, UnbanReason},
    },
    sink,
    sink::{Notice, fixtures::origin},
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
