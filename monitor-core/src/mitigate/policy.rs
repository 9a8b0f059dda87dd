//! Who gets banned, and when bans end: a pure function of the detectors' findings
//! and the clock passed in, so it is unit-tested without a kernel.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::{Duration, SystemTime},
};

use crate::{
    config::{MitigateConfig, MitigateMode},
    model::{
        alert::{AlertKind, AlertSource, Finding},
        ban::{Ban, UnbanReason},
        cidr::CidrSet,
    },
};

/// What the policy decided in one interval; the loop applies it to the kernel and
/// reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Ban(Ban),
    Unban {
        ban: Ban,
        reason: UnbanReason,
        at: SystemTime,
    },
    /// A source was confirmed while `max_bans` bans were in place: it is not banned.
    /// Decided once until the table has room again, so the log is not flooded too.
    CapReached {
        address: IpAddr,
        max_bans: usize,
    },
}

/// The alert kinds that confirm a ban: too much traffic from one source.
fn is_flood(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::SynFlood
            | AlertKind::UdpFlood
            | AlertKind::IcmpFlood
            | AlertKind::PpsBurst
            | AlertKind::Bandwidth
    )
}

#[derive(Clone, Debug)]
pub struct Policy {
    confirm_intervals: u32,
    ban_time: Duration,
    max_bans: usize,
    dry_run: bool,
    never_ban: CidrSet,
    /// Sources with a flood finding in every interval lately: how many in a row, and
    /// the kind first seen.
    held: HashMap<IpAddr, (u32, AlertKind)>,
    bans: BTreeMap<IpAddr, Ban>,
    cap_reported: bool,
}

impl Policy {
    /// `never_ban`: the allowlists (`lists.allowlist` and `mitigate.allowlist`).
    pub fn new(config: &MitigateConfig, never_ban: CidrSet) -> Self {
        Self {
            confirm_intervals: config.confirm_intervals.get(),
            ban_time: config.ban_time,
            max_bans: config.max_bans.get() as usize,
            dry_run: config.mode == MitigateMode::DryRun,
            never_ban,
            held: HashMap::new(),
            bans: BTreeMap::new(),
            cap_reported: false,
        }
    }

    /// One interval: bans that ran out end, and sources whose flood has held for
    /// `confirm_intervals` intervals are banned (a source held again after its ban
    /// ended, or after an operator lifted it, needs the full count again).
    pub fn update(&mut self, findings: &[Finding], now: SystemTime) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let expired: Vec<IpAddr> = self
            .bans
            .values()
            .filter(|ban| ban.until <= now)
            .map(|ban| ban.address)
            .collect();
        for address in expired {
            if let Some(ban) = self.bans.remove(&address) {
                self.held.remove(&address);
                decisions.push(Decision::Unban {
                    ban,
                    reason: UnbanReason::Expired,
                    at: now,
                });
            }
        }
        if self.bans.len() < self.max_bans {
            self.cap_reported = false;
        }

        let mut flooding: Vec<(IpAddr, AlertKind)> = Vec::new();
        for finding in findings {
            if let AlertSource::Ip(ip) = finding.source
                && is_flood(finding.kind)
                && !flooding.iter().any(|(seen, _)| *seen == ip)
            {
                flooding.push((ip, finding.kind));
            }
        }
        self.held
            .retain(|ip, _| flooding.iter().any(|(seen, _)| seen == ip));
        for (address, kind) in flooding {
            let held = self.held.entry(address).or_insert((0, kind));
            held.0 += 1;
            if held.0 < self.confirm_intervals
                || self.bans.contains_key(&address)
                || self.never_ban.contains(address)
            {
                continue;
            }
            if self.bans.len() >= self.max_bans {
                if !self.cap_reported {
                    self.cap_reported = true;
                    decisions.push(Decision::CapReached {
                        address,
                        max_bans: self.max_bans,
                    });
                }
                continue;
            }
            let reason = held.1;
            held.0 = 0;
            let ban = Ban {
                address,
                reason,
                since: now,
                until: now + self.ban_time,
                dry_run: self.dry_run,
            };
            self.bans.insert(address, ban.clone());
            decisions.push(Decision::Ban(ban));
        }
        decisions
    }

    /// An operator lifts a ban. It sticks: the source is banned again only after its
    /// flood holds for `confirm_intervals` more intervals.
    pub fn unban(&mut self, address: IpAddr, now: SystemTime) -> Option<Decision> {
        let ban = self.bans.remove(&address)?;
        self.held.remove(&address);
        Some(Decision::Unban {
            ban,
            reason: UnbanReason::Operator,
            at: now,
        })
    }

    /// The bans in place, by address.
    pub fn bans(&self) -> impl Iterator<Item = &Ban> {
        self.bans.values()
    }

    /// Every ban ends (the monitor is stopping: the kernel program goes with it).
    pub fn finish(&mut self, now: SystemTime) -> Vec<Decision> {
        std::mem::take(&mut self.bans)
            .into_values()
            .map(|ban| Decision::Unban {
                ban,
                reason: UnbanReason::Shutdown,
                at: now,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroU32, time::UNIX_EPOCH};

    use super::*;
    use crate::model::alert::{Target, Unit};

    const T0: Duration = Duration::from_secs(1_000);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    fn flood(ip: &str, kind: AlertKind) -> Finding {
        Finding {
            kind,
            source: AlertSource::Ip(ip.parse().unwrap()),
            target: Target::Interface("eth0".into()),
            value: 10_000.0,
            threshold: 4_000.0,
            unit: Unit::Pps,
            message: String::new(),
            flow: None,
            connection: None,
        }
    }

    fn policy(max_bans: u32, mode: MitigateMode, never: &[&str]) -> Policy {
        let config = MitigateConfig {
            mode,
            confirm_intervals: NonZeroU32::new(3).unwrap(),
            ban_time: Duration::from_secs(300),
            max_bans: NonZeroU32::new(max_bans).unwrap(),
            allowlist: Vec::new(),
        };
        Policy::new(
            &config,
            CidrSet::new(never.iter().map(|c| c.parse().unwrap())),
        )
    }

    fn bans(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .map(|d| match d {
                Decision::Ban(b) => format!("ban {} {}", b.address, b.reason),
                Decision::Unban { ban, reason, .. } => {
                    format!("unban {} {}", ban.address, reason.as_str())
                }
                Decision::CapReached { address, .. } => format!("cap {address}"),
            })
            .collect()
    }

    #[test]
    fn a_flood_held_for_the_confirm_intervals_is_banned_then_released() {
        let mut p = policy(10, MitigateMode::On, &[]);
        let f = [flood("192.0.2.9", AlertKind::UdpFlood)];
        assert!(p.update(&f, at(0)).is_empty());
        assert!(p.update(&f, at(1)).is_empty());
        let d = p.update(&f, at(2));
        assert_eq!(bans(&d), ["ban 192.0.2.9 udp_flood"]);
        let Decision::Ban(ban) = &d[0] else { panic!() };
        assert_eq!(ban.until, at(302));
        assert!(!ban.dry_run);
        // Still flooding while banned: nothing new.
        for s in 3..302 {
            assert!(p.update(&f, at(s)).is_empty(), "second {s}");
        }
        assert_eq!(bans(&p.update(&[], at(302))), ["unban 192.0.2.9 expired"]);
        assert_eq!(p.bans().count(), 0);
    }

    #[test]
    fn an_interruption_restarts_the_count() {
        let mut p = policy(10, MitigateMode::On, &[]);
        let f = [flood("192.0.2.9", AlertKind::SynFlood)];
        p.update(&f, at(0));
        p.update(&f, at(1));
        p.update(&[], at(2));
        p.update(&f, at(3));
        assert!(p.update(&f, at(4)).is_empty());
        assert_eq!(bans(&p.update(&f, at(5))), ["ban 192.0.2.9 syn_flood"]);
    }

    #[test]
    fn host_wide_alerts_and_scans_ban_nobody() {
        let mut p = policy(10, MitigateMode::On, &[]);
        let mut many = flood("192.0.2.9", AlertKind::PpsBurst);
        many.source = AlertSource::Many;
        let scan = flood("192.0.2.9", AlertKind::PortScan);
        for s in 0..10 {
            assert!(p.update(&[many.clone(), scan.clone()], at(s)).is_empty());
        }
    }

    #[test]
    fn the_allowlist_is_never_banned() {
        let mut p = policy(10, MitigateMode::On, &["192.0.2.0/24"]);
        let f = [
            flood("192.0.2.9", AlertKind::UdpFlood),
            flood("198.51.100.1", AlertKind::UdpFlood),
        ];
        let mut all = Vec::new();
        for s in 0..10 {
            all.extend(p.update(&f, at(s)));
        }
        assert_eq!(bans(&all), ["ban 198.51.100.1 udp_flood"]);
    }

    #[test]
    fn the_cap_holds_and_is_reported_once_until_there_is_room() {
        let mut p = policy(2, MitigateMode::DryRun, &[]);
        let f: Vec<Finding> = (1..=5)
            .map(|i| flood(&format!("192.0.2.{i}"), AlertKind::UdpFlood))
            .collect();
        let mut all = Vec::new();
        for s in 0..5 {
            all.extend(p.update(&f, at(s)));
        }
        assert_eq!(
            bans(&all),
            [
                "ban 192.0.2.1 udp_flood",
                "ban 192.0.2.2 udp_flood",
                "cap 192.0.2.3"
            ]
        );
        assert!(p.bans().all(|b| b.dry_run));
        // A ban ends: room for one more, and the cap may be reported again.
        p.unban("192.0.2.1".parse().unwrap(), at(5)).unwrap();
        let d = p.update(&f, at(6));
        assert_eq!(bans(&d), ["ban 192.0.2.3 udp_flood", "cap 192.0.2.4"]);
    }

    #[test]
    fn an_operator_unban_sticks_until_the_flood_is_confirmed_again() {
        let mut p = policy(10, MitigateMode::On, &[]);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let f = [flood("192.0.2.9", AlertKind::UdpFlood)];
        for s in 0..3 {
            p.update(&f, at(s));
        }
        assert_eq!(p.bans().count(), 1);
        let d = p.unban(ip, at(3)).unwrap();
        assert_eq!(bans(&[d]), ["unban 192.0.2.9 operator"]);
        assert!(p.unban(ip, at(3)).is_none(), "not banned any more");
        assert!(p.update(&f, at(4)).is_empty());
        assert!(p.update(&f, at(5)).is_empty());
        assert_eq!(bans(&p.update(&f, at(6))), ["ban 192.0.2.9 udp_flood"]);
    }
}
