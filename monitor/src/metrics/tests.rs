use super::*;
use crate::model::alert::{Alert, AlertEnd, Unit as AlertUnit};

fn run() -> RunInfo {
    RunInfo {
        iface: "eth0".into(),
        backend: "xdp",
        description: "xdp (native mode) on eth0".into(),
        interval: Duration::from_secs(1),
        mitigation: crate::config::MitigateMode::On,
    }
}

fn alert(kind: AlertKind, severity: Severity, source: &str) -> Alert {
    Alert {
        kind,
        severity,
        source: AlertSource::Ip(source.parse().unwrap()),
        target: Target::Interface("eth0".into()),
        value: 5_000.0,
        threshold: 500.0,
        unit: AlertUnit::SynPerSec,
        started_at: SystemTime::now(),
        message: "SYN rate".into(),
        flow: None,
        connection: None,
    }
}

fn end_of(a: &Alert) -> AlertEnd {
    AlertEnd {
        kind: a.kind,
        severity: a.severity,
        source: a.source,
        target: a.target.clone(),
        peak_value: a.value,
        threshold: a.threshold,
        unit: a.unit,
        started_at: a.started_at,
        ended_at: SystemTime::now(),
        duration_secs: 3.0,
        flow: None,
        connection: None,
    }
}

fn stats(packets: u64, top: &[(&str, f64)]) -> IntervalStats {
    let mut totals = GlobalCounters::default();
    totals.total.packets = packets;
    totals.udp.packets = packets;
    totals.udp.bytes = packets * 142;
    totals.ipv4.packets = packets;
    totals.syn = 7;
    IntervalStats {
        seconds: 1.0,
        totals,
        rates: Rates {
            pps: 50.0,
            bits_per_sec: 56_800.0,
            ..Rates::default()
        },
        top_sources: top
            .iter()
            .map(|(ip, pps)| SourceRate {
                ip: ip.parse().unwrap(),
                pps: *pps,
                bytes_per_sec: 0.0,
                bits_per_sec: pps * 1_136.0,
                syn_per_sec: 0.0,
                udp_pps: *pps,
                icmp_pps: 0.0,
                packets: 0,
                bytes: 0,
            })
            .collect(),
        capture_drops: None,
        dropped_sources: Vec::new(),
    }
}

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn exposition_has_prefixed_names_units_help_and_values() {
    let mut metrics = Metrics::new(None);
    metrics.start(&run());
    metrics.interval(&run(), &stats(50, &[("192.0.2.9", 40.0)]));
    let text = metrics.render();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for sample in [
        "monitor_packets_total{protocol=\"udp\"} 50",
        "monitor_packets_total{protocol=\"tcp\"} 0",
        "monitor_received_bytes_total{protocol=\"udp\"} 7100",
        "monitor_ip_packets_total{family=\"ipv4\"} 50",
        "monitor_tcp_flags_total{flag=\"syn\"} 7",
        "monitor_fragments_total 0",
        "monitor_current_packets_per_second 50.0",
        "monitor_current_bits_per_second 56800.0",
        "monitor_top_source_packets_per_second{source=\"192.0.2.9\",rank=\"1\"} 40.0",
        "monitor_active_alerts{kind=\"syn_flood\"} 0",
        "monitor_captures_total{result=\"written\"} 0",
        "monitor_run_info{backend=\"xdp\",iface=\"eth0\",description=\"xdp (native mode) on eth0\",version=",
    ] {
        assert!(line(&text, sample).is_some(), "no `{sample}` in\n{text}");
    }
    assert!(
        text.contains("# HELP monitor_packets Frames received"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT monitor_received_bytes bytes"),
        "{text}"
    );
    // Every sample name starts with monitor_.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.starts_with("monitor_"), "{l}");
    }
}

#[test]
fn top_sources_are_replaced_each_interval() {
    let mut metrics = Metrics::new(None);
    metrics.interval(
        &run(),
        &stats(10, &[("192.0.2.1", 5.0), ("192.0.2.2", 4.0)]),
    );
    metrics.interval(&run(), &stats(20, &[("192.0.2.3", 9.0)]));
    let text = metrics.render();
    let top: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("monitor_top_source_packets_per_second{"))
        .collect();
    assert_eq!(top.len(), 1, "{text}");
    assert!(top[0].contains("192.0.2.3"));
}

#[test]
fn alerts_count_by_kind_and_severity_and_active_ones_end() {
    let mut metrics = Metrics::new(None);
    let flood = alert(AlertKind::SynFlood, Severity::Critical, "192.0.2.9");
    let other = alert(AlertKind::SynFlood, Severity::High, "192.0.2.10");
    let scan = alert(AlertKind::PortScan, Severity::Low, "192.0.2.11");
    metrics.alerts(
        &run(),
        &[
            AlertEvent::Alert(flood.clone()),
            AlertEvent::Alert(other),
            AlertEvent::Alert(scan),
        ],
    );
    let text = metrics.render();
    assert!(
        line(
            &text,
            "monitor_alerts_total{kind=\"syn_flood\",severity=\"critical\"} 1"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "monitor_alerts_total{kind=\"syn_flood\",severity=\"high\"} 1"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(&text, "monitor_active_alerts{kind=\"syn_flood\"} 2").is_some(),
        "{text}"
    );
    assert!(
        line(&text, "monitor_active_alerts{kind=\"port_scan\"} 1").is_some(),
        "{text}"
    );
    metrics.alerts(&run(), &[AlertEvent::AlertEnd(end_of(&flood))]);
    let text = metrics.render();
    assert!(
        line(&text, "monitor_active_alerts{kind=\"syn_flood\"} 1").is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "monitor_alerts_total{kind=\"syn_flood\",severity=\"critical\"} 1"
        )
        .is_some(),
        "{text}"
    );
}

#[test]
fn captures_and_sinks_are_counted() {
    let mut state = MetricsState::default();
    let done = |error: Option<&str>| CaptureDone {
        id: 1,
        kind: AlertKind::SynFlood,
        source: "192.0.2.9".into(),
        target: None,
        path: "captures/x.pcap".into(),
        packets: 10,
        bytes: 600,
        error: error.map(str::to_owned),
    };
    state.capture(&done(None));
    state.capture(&done(None));
    state.capture(&done(Some("disk full")));
    state.sinks = vec![SinkStats {
        kind: "discord",
        target: "https://discord.com/api/webhooks/…".into(),
        delivered: 3,
        failed: 1,
        dropped: 2,
        pending: 0,
    }];
    let families = families(&state);
    let find = |name: &str| families.iter().find(|f| f.name == name).unwrap();
    assert_eq!(
        find("captures").samples,
        vec![
            (label("result", "written"), Value::Int(2)),
            (label("result", "failed"), Value::Int(1)),
        ]
    );
    let notices = &find("sink_notices").samples;
    assert_eq!(notices.len(), 3);
    assert_eq!(notices[2].0[0], ("sink", "discord".to_owned()));
    assert_eq!(notices[2].0[2], ("outcome", "dropped".to_owned()));
    assert_eq!(notices[2].1, Value::Int(2));
}

#[test]
fn active_alerts_list_every_kind() {
    // A new kind makes this match fail to compile: add it to ALL_KINDS as well.
    for kind in ALL_KINDS {
        match kind {
            AlertKind::SynFlood
            | AlertKind::UdpFlood
            | AlertKind::IcmpFlood
            | AlertKind::PpsBurst
            | AlertKind::Bandwidth
            | AlertKind::Spike
            | AlertKind::PortScan
            | AlertKind::LargeDownload
            | AlertKind::Blocklisted
            | AlertKind::BlocklistedConnection
            | AlertKind::ExcessiveConnections => {}
            // Mitigation's events, not alerts: `bans`, `unbans` and `active_bans`.
            AlertKind::Ban | AlertKind::Unban => panic!("{kind} is not an alert kind"),
        }
    }
    let mut kinds = ALL_KINDS.to_vec();
    kinds.dedup();
    assert_eq!(kinds.len(), 11);
}

#[test]
fn mitigation_drops_and_bans_are_counted() {
    use crate::model::ban::{Ban, BanEvent, UnbanEvent, UnbanReason};
    let mut metrics = Metrics::new(None);
    metrics.start(&run());
    let mut dropped = stats(50, &[]);
    dropped.totals.dropped.packets = 30;
    dropped.totals.dropped.bytes = 30 * 74;
    metrics.interval(&run(), &dropped);
    let ban = |ip: &str| Ban {
        address: ip.parse().unwrap(),
        reason: AlertKind::UdpFlood,
        since: SystemTime::now(),
        until: SystemTime::now() + Duration::from_secs(300),
        dry_run: false,
    };
    metrics.alerts(
        &run(),
        &[
            AlertEvent::Ban(BanEvent::new(&ban("192.0.2.9"))),
            AlertEvent::Ban(BanEvent::new(&ban("192.0.2.10"))),
            AlertEvent::Unban(UnbanEvent::new(
                &ban("192.0.2.9"),
                UnbanReason::Operator,
                SystemTime::now(),
            )),
        ],
    );
    let text = metrics.render();
    for sample in [
        "monitor_mitigation_dropped_packets_total 30",
        "monitor_mitigation_dropped_bytes_total 2220",
        "monitor_bans_total 2",
        "monitor_unbans_total{reason=\"operator\"} 1",
        "monitor_unbans_total{reason=\"expired\"} 0",
        "monitor_active_bans 1",
    ] {
        assert!(line(&text, sample).is_some(), "no `{sample}` in\n{text}");
    }
}

#[test]
fn pcap_capture_drops_are_a_family_only_where_the_backend_can_lose_packets() {
    let mut metrics = Metrics::new(None);
    metrics.start(&run());
    metrics.interval(&run(), &stats(50, &[]));
    let text = metrics.render();
    assert!(!text.contains("capture_dropped"), "{text}");
    let mut pcap = stats(50, &[]);
    pcap.capture_drops = Some(CaptureDrops {
        dropped: 1_234,
        if_dropped: 5,
    });
    metrics.interval(&run(), &pcap);
    let text = metrics.render();
    for sample in [
        "monitor_capture_dropped_packets_total{cause=\"buffer\"} 1234",
        "monitor_capture_dropped_packets_total{cause=\"interface\"} 5",
    ] {
        assert!(line(&text, sample).is_some(), "no `{sample}` in\n{text}");
    }
    assert!(
        text.contains("# TYPE monitor_capture_dropped_packets counter"),
        "{text}"
    );
}
