//! The detector as a whole, with scripted intervals: lists, exemptions, the spike
//! baseline under attack, and through the alert tracker to alert and end events.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::{
    alert::AlertTracker,
    model::{
        alert::{AlertEvent, FlowKey, Unit},
        cidr::{Cidr, CidrSet},
    },
};

const TICK: f64 = 0.25;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn src(packets: u64, bytes: u64, syn: u64, udp: u64, icmp: u64) -> SourceCounters {
    SourceCounters {
        packets,
        bytes,
        syn,
        udp,
        icmp,
        ..Default::default()
    }
}

/// An interval whose host counters are the sum of its sources.
fn interval(sources: &[(&str, SourceCounters)]) -> DetectInput {
    let mut input = DetectInput {
        interval_secs: TICK,
        elapsed_secs: TICK,
        ..DetectInput::default()
    };
    for (addr, c) in sources {
        input.host.total.packets += c.packets;
        input.host.total.bytes += c.bytes;
        input.host.syn += c.syn;
        input.host.udp.packets += c.udp;
        input.host.icmp.packets += c.icmp;
        input.sources.insert(ip(addr), *c);
    }
    input
}

/// A quiet office: a few hundred packets a second from a handful of peers.
fn quiet() -> DetectInput {
    interval(&[
        ("203.0.113.80", src(120, 150_000, 1, 0, 0)),
        ("198.51.100.53", src(10, 1_200, 0, 10, 0)),
        ("192.168.1.5", src(40, 9_000, 2, 4, 0)),
    ])
}

fn detector(config: &Config, lists: Lists) -> Detector {
    Detector::new(config, lists, "eth0")
}

fn kinds(found: &[Finding]) -> Vec<(AlertKind, String)> {
    found
        .iter()
        .map(|f| (f.kind, f.source.to_string()))
        .collect()
}

fn at(tick: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(250 * u64::from(tick))
}

#[test]
fn input_from_snapshots_is_the_deltas() {
    let t0 = Instant::now();
    let mut prev_global = GlobalCounters::default();
    prev_global.total.packets = 1_000;
    prev_global.syn = 10;
    let mut cur_global = prev_global;
    cur_global.total.packets = 3_000;
    cur_global.syn = 510;
    let prev = Snapshot {
        taken: t0,
        global: prev_global,
        sources: SourceList::from_iter([
            (ip("192.0.2.1"), src(900, 0, 10, 0, 0)),
            (ip("192.0.2.2"), src(100, 0, 0, 0, 0)),
        ]),
        listed_destinations: HashMap::new(),
        large_flows: Vec::new(),
        syn_acks_sent: None,
        capture_drops: None,
        dropped: HashMap::new(),
    };
    let cur = Snapshot {
        taken: t0 + Duration::from_millis(250),
        global: cur_global,
        sources: SourceList::from_iter([
            (ip("192.0.2.1"), src(2_900, 0, 510, 0, 0)),
            (ip("192.0.2.2"), src(100, 0, 0, 0, 0)),
            (ip("192.0.2.3"), src(5, 0, 0, 0, 0)),
        ]),
        listed_destinations: HashMap::new(),
        large_flows: Vec::new(),
        syn_acks_sent: None,
        capture_drops: None,
        dropped: HashMap::new(),
    };
    let input = DetectInput::from_snapshots(&prev, &cur);
    assert_eq!(input.interval_secs, 0.25);
    assert_eq!((input.host.total.packets, input.host.syn), (2_000, 500));
    assert_eq!(input.sources.len(), 2, "idle sources are left out");
    assert_eq!(input.sources[&ip("192.0.2.1")], src(2_000, 0, 500, 0, 0));
    assert_eq!(input.sources[&ip("192.0.2.3")].packets, 5);
}

#[test]
fn a_syn_flood_is_an_alert_in_the_first_interval() {
    let config = Config::default();
    let mut d = detector(&config, Lists::default());
    let mut tracker = AlertTracker::new(&config.alerting);
    for tick in 0..4 {
        assert!(tracker.update(d.evaluate(&quiet()), at(tick)).is_empty());
    }
    // The flood starts: 20,000 SYNs in the first 250 ms.
    let mut flood = quiet();
    flood
        .sources
        .insert(ip("45.77.88.90"), src(20_000, 1_200_000, 20_000, 0, 0));
    flood.host.total.packets += 20_000;
    flood.host.syn += 20_000;
    let events = tracker.update(d.evaluate(&flood), at(4));
    assert_eq!(events.len(), 1, "{events:?}");
    let AlertEvent::Alert(alert) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (alert.kind, alert.source.to_string()),
        (AlertKind::SynFlood, "45.77.88.90".into())
    );
    assert_eq!(
        (alert.value, alert.threshold, alert.unit),
        (80_000.0, 500.0, Unit::SynPerSec)
    );
    assert_eq!(alert.started_at, at(4));
    // It goes on quietly, then ends three clear intervals after it stops.
    for tick in 5..20 {
        assert!(tracker.update(d.evaluate(&flood), at(tick)).is_empty());
    }
    assert!(tracker.update(d.evaluate(&quiet()), at(20)).is_empty());
    assert!(tracker.update(d.evaluate(&quiet()), at(21)).is_empty());
    let ended = tracker.update(d.evaluate(&quiet()), at(22));
    let [AlertEvent::AlertEnd(end)] = &ended[..] else {
        panic!("{ended:?}")
    };
    assert_eq!((end.kind, end.ended_at), (AlertKind::SynFlood, at(20)));
}

#[test]
fn a_random_source_flood_raises_the_host_alert_once() {
    let config = Config::default();
    let mut d = detector(&config, Lists::default());
    let mut tracker = AlertTracker::new(&config.alerting);
    let mut raised = Vec::new();
    for tick in 0..8 {
        // 20,000 spoofed sources, one or two UDP packets each.
        let spoofed: Vec<(String, SourceCounters)> = (0..20_000u32)
            .map(|i| {
                let n = 1 + u64::from((i + tick) % 2);
                (
                    format!("10.{}.{}.{}", 100 + tick, i / 250, i % 250),
                    src(n, n * 512, 0, n, 0),
                )
            })
            .collect();
        let refs: Vec<(&str, SourceCounters)> =
            spoofed.iter().map(|(a, c)| (a.as_str(), *c)).collect();
        // The spoofed sources are in 10/8 (private): they are still counted for a flood.
        let findings = d.evaluate(&interval(&refs));
        assert_eq!(kinds(&findings), [(AlertKind::UdpFlood, "many".into())]);
        raised.extend(tracker.update(findings, at(tick)));
    }
    let [AlertEvent::Alert(alert)] = &raised[..] else {
        panic!("{raised:?}")
    };
    assert_eq!(alert.source, AlertSource::Many);
    assert!(alert.value >= 25_000.0 * 4.0, "{}", alert.value);
}

#[test]
fn normal_traffic_raises_nothing() {
    let config = Config::default();
    let mut d = detector(&config, Lists::default());
    let mut tracker = AlertTracker::new(&config.alerting);
    let mut events = Vec::new();
    let start = at(0);
    for tick in 0..2_000u32 {
        let mut input = quiet();
        match tick % 400 {
            // A 5 MB download over a second.
            100..=103 => {
                input
                    .sources
                    .insert(ip("151.101.1.1"), src(900, 1_300_000, 0, 0, 0));
                input.host.total.packets += 900;
                input.host.total.bytes += 1_300_000;
                input.flows.push(FlowRecord {
                    key: FlowKey {
                        protocol: 6,
                        src: "151.101.1.1:443".parse().unwrap(),
                        dst: "192.168.1.5:40000".parse().unwrap(),
                    },
                    inbound_payload_bytes: 1_250_000 * u64::from(tick % 400 - 99),
                    first_seen: start,
                    last_seen: at(tick),
                });
            }
            // A few pings.
            200 => {
                input.sources.insert(ip("192.0.2.99"), src(1, 98, 0, 0, 1));
                input.host.total.packets += 1;
                input.host.icmp.packets += 1;
            }
            // A short burst below the thresholds.
            300..=301 => {
                input
                    .sources
                    .insert(ip("203.0.113.81"), src(800, 1_000_000, 30, 0, 0));
                input.host.total.packets += 800;
                input.host.total.bytes += 1_000_000;
                input.host.syn += 30;
                input.scans.insert(
                    ip("203.0.113.81"),
                    ScanEstimate {
                        distinct_ports: 3,
                        distinct_hosts: 1,
                    },
                );
            }
            _ => {}
        }
        events.extend(tracker.update(d.evaluate(&input), at(tick)));
    }
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn allowlisted_sources_never_alert() {
    let config = Config::default();
    let lists = Lists {
        blocklist: CidrSet::new([cidr("45.77.0.0/16")]),
        allowlist: CidrSet::new([cidr("45.77.88.0/24"), cidr("2001:db8::/32")]),
    };
    let mut d = detector(&config, lists);
    let mut input = interval(&[
        ("45.77.88.90", src(20_000, 30_000_000, 20_000, 0, 0)),
        ("2001:db8::5", src(5_000, 100, 0, 5_000, 0)),
    ]);
    input.scans.insert(
        ip("45.77.88.90"),
        ScanEstimate {
            distinct_ports: 1_000,
            distinct_hosts: 50,
        },
    );
    input.flows.push(FlowRecord {
        key: FlowKey {
            protocol: 6,
            src: "[2001:db8::5]:443".parse().unwrap(),
            dst: "[2001:db8:1::2]:40000".parse().unwrap(),
        },
        inbound_payload_bytes: 50_000_000,
        first_seen: at(0),
        last_seen: at(40),
    });
    input.blocklist_hits.push(BlocklistHit {
        addr: ip("45.77.88.90"),
        direction: Direction::FromListed,
        packets: 5,
        bytes: 300,
    });
    assert!(d.evaluate(&input).is_empty());

    // The same traffic from outside the allowlist, on the blocklist.
    let mut other = interval(&[("45.77.1.1", src(20_000, 1_200_000, 20_000, 0, 0))]);
    other.scans.insert(
        ip("45.77.1.1"),
        ScanEstimate {
            distinct_ports: 1_000,
            distinct_hosts: 1,
        },
    );
    assert_eq!(
        kinds(&d.evaluate(&other)),
        [
            (AlertKind::SynFlood, "45.77.1.1".into()),
            (AlertKind::PortScan, "45.77.1.1".into()),
            (AlertKind::Blocklisted, "45.77.1.1".into()),
        ]
    );
}

#[test]
fn local_sources_are_left_out_of_bursts_unless_configured() {
    // A NAS sync from the LAN: 60 MB/s in full frames, 40,000 pps.
    let sync = || interval(&[("192.168.1.20", src(10_000, 15_000_000, 0, 0, 0))]);
    let mut d = detector(&Config::default(), Lists::default());
    assert!(d.evaluate(&sync()).is_empty());

    let mut config = Config::default();
    config.lists.exclude_private_from_burst = false;
    let mut d = detector(&config, Lists::default());
    assert_eq!(
        kinds(&d.evaluate(&sync())),
        [
            (AlertKind::PpsBurst, "192.168.1.20".into()),
            (AlertKind::Bandwidth, "192.168.1.20".into())
        ]
    );
}

#[test]
fn blocklisted_traffic_is_reported_once_from_both_paths() {
    let config = Config::default();
    let lists = Lists {
        blocklist: CidrSet::new([cidr("198.51.100.0/24"), cidr("2001:db8:bad::/48")]),
        allowlist: CidrSet::default(),
    };
    let mut d = detector(&config, lists);
    let mut tracker = AlertTracker::new(&config.alerting);
    let mut input = interval(&[
        ("198.51.100.23", src(3, 180, 1, 0, 0)),
        ("2001:db8:bad::1", src(1, 90, 0, 0, 1)),
    ]);
    input.blocklist_hits.push(BlocklistHit {
        addr: ip("198.51.100.23"),
        direction: Direction::FromListed,
        packets: 3,
        bytes: 180,
    });
    let found = d.evaluate(&input);
    assert_eq!(found.len(), 3);
    let events = tracker.update(found, at(0));
    let sources: Vec<String> = events
        .iter()
        .map(|e| match e {
            AlertEvent::Alert(a) => format!("{} {}", a.kind, a.source),
            _ => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(
        sources,
        ["blocklisted 198.51.100.23", "blocklisted 2001:db8:bad::1"]
    );
}

#[test]
fn a_large_download_is_one_alert_with_its_flow() {
    let config = Config::default();
    let mut d = detector(&config, Lists::default());
    let mut tracker = AlertTracker::new(&config.alerting);
    let key = FlowKey {
        protocol: 6,
        src: "203.0.113.5:80".parse().unwrap(),
        dst: "192.0.2.10:51234".parse().unwrap(),
    };
    let mut events = Vec::new();
    for tick in 0..40u32 {
        let mut input = quiet();
        if tick < 30 {
            input.flows.push(FlowRecord {
                key,
                inbound_payload_bytes: 1_000_000 * u64::from(tick + 1),
                first_seen: at(0),
                last_seen: at(tick),
            });
        }
        events.extend(tracker.update(d.evaluate(&input), at(tick)));
    }
    let [AlertEvent::Alert(alert), AlertEvent::AlertEnd(end)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (alert.kind, alert.started_at, alert.value),
        (AlertKind::LargeDownload, at(19), 20_000_000.0)
    );
    assert_eq!(alert.target, "192.0.2.10:51234");
    let flow = end.flow.as_ref().unwrap();
    assert_eq!(
        (flow.bytes, flow.src_port, flow.dst_port),
        (30_000_000, 80, 51234)
    );
    assert_eq!(end.peak_value, 30_000_000.0);
}

#[test]
fn the_spike_baseline_stands_still_during_a_flood() {
    let mut config = Config::default();
    config.detection.spike.warmup = Duration::from_secs(10);
    let mut d = detector(&config, Lists::default());
    for _ in 0..80 {
        assert!(d.evaluate(&quiet()).is_empty());
    }
    let learned = d.spike.pps;
    // A UDP flood from one source under the spike floor: a flood alert, no spike, and
    // the baseline learns nothing from it.
    let flood = interval(&[("203.0.113.9", src(2_000, 1_000_000, 0, 2_000, 0))]);
    for _ in 0..40 {
        assert_eq!(
            kinds(&d.evaluate(&flood)),
            [(AlertKind::UdpFlood, "203.0.113.9".into())]
        );
    }
    assert_eq!(d.spike.pps, learned);
    assert!(d.evaluate(&quiet()).is_empty());
    assert!(d.spike.pps.learned_secs > learned.learned_secs);
}

#[test]
fn an_empty_interval_detects_nothing() {
    let mut d = detector(&Config::default(), Lists::default());
    let mut input = interval(&[("45.77.88.90", src(20_000, 1_200_000, 20_000, 0, 0))]);
    input.interval_secs = 0.0;
    assert!(d.evaluate(&input).is_empty());
    input.interval_secs = f64::NAN;
    assert!(d.evaluate(&input).is_empty());
}

/// The kernel's blocklist matches and large flows become detector input: listed
/// sources and destinations by their growth, flows only while they grow.
#[test]
fn kernel_matches_and_flows_become_input() {
    use std::{net::SocketAddr, time::SystemTime};

    use monitor_common::counters::Tally;

    use crate::model::snapshot::FlowTotals;

    let t0 = Instant::now();
    let listed = ip("198.51.100.7");
    let mut from_listed = src(10, 600, 0, 0, 0);
    from_listed.blocklisted = 10;
    let flow = |bytes| FlowTotals {
        protocol: 6,
        src: SocketAddr::new(ip("203.0.113.5"), 80),
        dst: SocketAddr::new(ip("192.0.2.1"), 40_000),
        payload_bytes: bytes,
        packets: bytes / 1_400,
        first_seen: SystemTime::UNIX_EPOCH,
        last_grew: SystemTime::UNIX_EPOCH,
    };
    let snapshot = |taken, sources, dst_packets, flow_bytes| Snapshot {
        taken,
        global: GlobalCounters::default(),
        sources,
        listed_destinations: HashMap::from([(
            ip("203.0.113.66"),
            Tally {
                packets: dst_packets,
                bytes: dst_packets * 100,
            },
        )]),
        large_flows: vec![flow(flow_bytes)],
        syn_acks_sent: None,
        capture_drops: None,
        dropped: HashMap::new(),
    };
    let prev = snapshot(t0, SourceList::default(), 5, 20_000_000);
    let cur = snapshot(
        t0 + Duration::from_secs(1),
        SourceList::from_iter([(listed, from_listed)]),
        8,
        21_000_000,
    );
    let input = DetectInput::from_snapshots(&prev, &cur);
    let hits: Vec<(IpAddr, Direction, u64)> = input
        .blocklist_hits
        .iter()
        .map(|h| (h.addr, h.direction, h.packets))
        .collect();
    assert_eq!(
        hits,
        vec![
            (listed, Direction::FromListed, 10),
            (ip("203.0.113.66"), Direction::ToListed, 3)
        ]
    );
    assert_eq!(input.flows.len(), 1);
    assert_eq!(input.flows[0].inbound_payload_bytes, 21_000_000);
    let idle = DetectInput::from_snapshots(&cur, &cur);
    assert!(
        idle.flows.is_empty(),
        "a flow that stopped growing is left out"
    );
    assert!(idle.blocklist_hits.is_empty());
}

/// A scan is unanswered SYNs: a scanner under the SYN threshold is reported as a scan,
/// not also as a SYN flood by the SYN:SYN-ACK ratio; the ratio still catches a source
/// that is not scanning.
#[test]
fn a_scan_is_not_also_a_ratio_syn_flood() {
    let scanner = "192.0.2.44";
    let mut input = interval(&[(scanner, src(100, 6_000, 100, 0, 0))]); // 400 SYN/s
    input.syn_ack_sent = Some(SourceList::default());
    input.scans.insert(
        ip(scanner),
        ScanEstimate {
            distinct_ports: 180,
            distinct_hosts: 1,
        },
    );
    let mut d = Detector::new(&Config::default(), Lists::default(), "eth0");
    let kinds: Vec<AlertKind> = d.evaluate(&input).iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![AlertKind::PortScan]);

    input.scans.clear();
    let found = d.evaluate(&input);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, AlertKind::SynFlood);
    assert!(
        found[0].message.contains("no SYN-ACK sent back"),
        "{}",
        found[0].message
    );
}
