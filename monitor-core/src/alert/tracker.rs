//! From findings to alerts. Pure: the caller passes the time of each interval.
//!
//! An alert is identified by kind, source and target (and flow, for flow alerts). It is
//! raised once when its condition first appears and stays active, silently, while the
//! condition holds; it ends once the condition has been clear for `clear_intervals`
//! consecutive intervals (so that one quiet interval in a flood does not end it). After
//! an alert is raised, the same alert is not raised again within `cooldown`: a
//! recurrence inside the cooldown is held back and raised when the cooldown expires if
//! it is still going, so a restarted attack is never hidden for good.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use crate::{
    config::AlertingConfig,
    model::{
        alert::{
            Alert, AlertEnd, AlertEvent, AlertKind, AlertSource, Finding, FlowDetails, FlowKey,
            Severity, Target, Unit,
        },
        connection::ConnectionDetails,
    },
};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct AlertKey {
    kind: AlertKind,
    source: AlertSource,
    target: Target,
    flow: Option<FlowKey>,
}

impl AlertKey {
    fn of(finding: &Finding) -> Self {
        Self {
            kind: finding.kind,
            source: finding.source,
            target: finding.target.clone(),
            flow: finding.flow.as_ref().map(FlowDetails::key),
        }
    }
}

#[derive(Clone, Debug)]
struct Episode {
    started_at: SystemTime,
    raised: bool,
    peak_value: f64,
    peak_severity: Severity,
    threshold: f64,
    unit: Unit,
    clear_intervals: u32,
    cleared_at: Option<SystemTime>,
    flow: Option<FlowDetails>,
    connection: Option<ConnectionDetails>,
}

impl Episode {
    fn end(&self, key: &AlertKey, ended_at: SystemTime) -> AlertEvent {
        AlertEvent::AlertEnd(AlertEnd {
            kind: key.kind,
            severity: self.peak_severity,
            source: key.source,
            target: key.target.clone(),
            peak_value: self.peak_value,
            threshold: self.threshold,
            unit: self.unit,
            started_at: self.started_at,
            ended_at,
            duration_secs: elapsed(self.started_at, ended_at).as_secs_f64(),
            flow: self.flow.clone(),
            connection: self.connection.clone(),
        })
    }
}

/// A clock that stepped back counts as no time passed.
fn elapsed(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct AlertTracker {
    cooldown: Duration,
    clear_intervals: u32,
    episodes: BTreeMap<AlertKey, Episode>,
    /// When each alert was last raised; kept only while its cooldown runs.
    last_raised: HashMap<AlertKey, SystemTime>,
}

impl AlertTracker {
    pub fn new(config: &AlertingConfig) -> Self {
        Self {
            cooldown: config.cooldown,
            clear_intervals: config.clear_intervals.get(),
            episodes: BTreeMap::new(),
            last_raised: HashMap::new(),
        }
    }

    /// Takes everything found in one interval at `now`; returns the alerts to emit, in
    /// a stable order: ends first, then new alerts, each by kind, source and target.
    pub fn update(
        &mut self,
        findings: impl IntoIterator<Item = Finding>,
        now: SystemTime,
    ) -> Vec<AlertEvent> {
        // Several detectors may report the same alert (a blocklisted source seen in the
        // per-source table and by the kernel): keep the largest value.
        let mut current: BTreeMap<AlertKey, Finding> = BTreeMap::new();
        for finding in findings {
            let key = AlertKey::of(&finding);
            match current.get(&key) {
                Some(seen) if seen.value >= finding.value => {}
                _ => {
                    current.insert(key, finding);
                }
            }
        }

        let mut events = Vec::new();
        let clear_intervals = self.clear_intervals;
        self.episodes.retain(|key, episode| {
            if current.contains_key(key) {
                return true;
            }
            episode.clear_intervals += 1;
            let cleared_at = *episode.cleared_at.get_or_insert(now);
            if episode.clear_intervals < clear_intervals {
                return true;
            }
            // A recurrence held back by the cooldown that never got raised ends quietly.
            if episode.raised {
                events.push(episode.end(key, cleared_at));
            }
            false
        });

        for (key, finding) in current {
            let severity = finding.severity();
            let episode = self.episodes.entry(key.clone()).or_insert_with(|| Episode {
                started_at: now,
                raised: false,
                peak_value: finding.value,
                peak_severity: severity,
                threshold: finding.threshold,
                unit: finding.unit,
                clear_intervals: 0,
                cleared_at: None,
                flow: None,
                connection: None,
            });
            episode.clear_intervals = 0;
            episode.cleared_at = None;
            if finding.value >= episode.peak_value {
                episode.peak_value = finding.value;
                episode.threshold = finding.threshold;
                episode.unit = finding.unit;
            }
            episode.peak_severity = episode.peak_severity.max(severity);
            episode.flow.clone_from(&finding.flow);
            episode.connection.clone_from(&finding.connection);
            if episode.raised {
                continue;
            }
            let cooled = self
                .last_raised
                .get(&key)
                .is_none_or(|raised| elapsed(*raised, now) >= self.cooldown);
            if cooled {
                episode.raised = true;
                self.last_raised.insert(key, now);
                events.push(AlertEvent::Alert(Alert {
                    kind: finding.kind,
                    severity,
                    source: finding.source,
                    target: finding.target,
                    value: finding.value,
                    threshold: finding.threshold,
                    unit: finding.unit,
                    started_at: episode.started_at,
                    message: finding.message,
                    flow: finding.flow,
                    connection: finding.connection,
                }));
            }
        }

        let cooldown = self.cooldown;
        self.last_raised
            .retain(|_, raised| elapsed(*raised, now) < cooldown);
        events
    }

    /// Ends every raised alert, e.g. when the monitor stops.
    pub fn finish(&mut self, now: SystemTime) -> Vec<AlertEvent> {
        let episodes = std::mem::take(&mut self.episodes);
        episodes
            .iter()
            .filter(|(_, episode)| episode.raised)
            .map(|(key, episode)| episode.end(key, episode.cleared_at.unwrap_or(now)))
            .collect()
    }

    /// Alerts raised and not yet ended.
    pub fn active(&self) -> usize {
        self.episodes.values().filter(|e| e.raised).count()
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, num::NonZeroU32, time::UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn tracker(cooldown_secs: u64, clear: u32) -> AlertTracker {
        AlertTracker::new(&AlertingConfig {
            cooldown: Duration::from_secs(cooldown_secs),
            clear_intervals: NonZeroU32::new(clear).unwrap(),
            ..AlertingConfig::default()
        })
    }

    fn syn_flood(source: &str, value: f64) -> Finding {
        Finding {
            kind: AlertKind::SynFlood,
            source: AlertSource::Ip(source.parse::<IpAddr>().unwrap()),
            target: Target::Interface("eth0".into()),
            value,
            threshold: 500.0,
            unit: Unit::SynPerSec,
            message: format!("SYN rate {value}"),
            flow: None,
            connection: None,
        }
    }

    fn kinds(events: &[AlertEvent]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                AlertEvent::Alert(_) => "alert",
                AlertEvent::AlertEnd(_) => "end",
                AlertEvent::Ban(_) | AlertEvent::Unban(_) => "mitigation",
            })
            .collect()
    }

    #[test]
    fn raised_once_then_ended_after_the_clear_intervals() {
        let mut t = tracker(60, 3);
        let raised = t.update([syn_flood("192.0.2.1", 1_000.0)], at(0));
        assert_eq!(kinds(&raised), ["alert"]);
        let AlertEvent::Alert(alert) = &raised[0] else {
            unreachable!()
        };
        assert_eq!(
            (alert.started_at, alert.severity),
            (at(0), Severity::Medium)
        );

        assert!(
            t.update([syn_flood("192.0.2.1", 2_500.0)], at(1))
                .is_empty()
        );
        assert!(t.update([], at(2)).is_empty());
        // One quiet interval does not end it.
        assert!(
            t.update([syn_flood("192.0.2.1", 2_000.0)], at(3))
                .is_empty()
        );
        assert!(t.update([], at(4)).is_empty());
        assert!(t.update([], at(5)).is_empty());
        assert_eq!(t.active(), 1);
        let ended = t.update([], at(6));
        assert_eq!(kinds(&ended), ["end"]);
        let AlertEvent::AlertEnd(end) = &ended[0] else {
            unreachable!()
        };
        assert_eq!(
            (end.started_at, end.ended_at, end.duration_secs),
            (at(0), at(4), 4.0)
        );
        assert_eq!((end.peak_value, end.severity), (2_500.0, Severity::High));
        assert_eq!(t.active(), 0);
    }

    #[test]
    fn a_recurrence_inside_the_cooldown_is_held_until_it_expires() {
        let mut t = tracker(60, 1);
        assert_eq!(
            kinds(&t.update([syn_flood("192.0.2.1", 1_000.0)], at(0))),
            ["alert"]
        );
        assert_eq!(kinds(&t.update([], at(1))), ["end"]);
        // Back within the cooldown: held back while it lasts...
        for s in 10..60 {
            assert!(
                t.update([syn_flood("192.0.2.1", 1_000.0)], at(s))
                    .is_empty(),
                "{s}"
            );
        }
        // ...and raised when the cooldown expires, with its real start.
        let raised = t.update([syn_flood("192.0.2.1", 1_000.0)], at(60));
        let AlertEvent::Alert(alert) = &raised[0] else {
            unreachable!()
        };
        assert_eq!(alert.started_at, at(10));
    }

    #[test]
    fn a_blip_inside_the_cooldown_stays_quiet() {
        let mut t = tracker(60, 1);
        t.update([syn_flood("192.0.2.1", 1_000.0)], at(0));
        t.update([], at(1));
        assert!(
            t.update([syn_flood("192.0.2.1", 1_000.0)], at(20))
                .is_empty()
        );
        assert!(t.update([], at(21)).is_empty());
        // After the cooldown a new episode is a new alert.
        assert_eq!(
            kinds(&t.update([syn_flood("192.0.2.1", 1_000.0)], at(90))),
            ["alert"]
        );
    }

    #[test]
    fn sources_and_flows_are_separate_alerts() {
        let mut t = tracker(60, 3);
        let events = t.update(
            [
                syn_flood("192.0.2.2", 800.0),
                syn_flood("192.0.2.1", 900.0),
                syn_flood("192.0.2.1", 700.0),
            ],
            at(0),
        );
        assert_eq!(kinds(&events), ["alert", "alert"]);
        let AlertEvent::Alert(first) = &events[0] else {
            unreachable!()
        };
        assert_eq!(
            (first.source.to_string(), first.value),
            ("192.0.2.1".into(), 900.0)
        );

        let flow = |src_port| {
            let mut f = syn_flood("203.0.113.5", 3e7);
            f.kind = AlertKind::LargeDownload;
            f.flow = Some(FlowDetails {
                protocol: 6,
                src: "203.0.113.5".parse().unwrap(),
                src_port,
                dst: "192.0.2.10".parse().unwrap(),
                dst_port: 50_000,
                bytes: 30_000_000,
                duration_secs: 3.0,
            });
            f
        };
        assert_eq!(
            kinds(&t.update([flow(443), flow(8443)], at(1))),
            ["alert", "alert"]
        );
    }

    #[test]
    fn finish_ends_what_is_raised() {
        let mut t = tracker(60, 3);
        t.update([syn_flood("192.0.2.1", 1_000.0)], at(0));
        let ended = t.finish(at(5));
        assert_eq!(kinds(&ended), ["end"]);
        let AlertEvent::AlertEnd(end) = &ended[0] else {
            unreachable!()
        };
        assert_eq!(end.ended_at, at(5));
        assert!(t.finish(at(6)).is_empty());
    }
}
