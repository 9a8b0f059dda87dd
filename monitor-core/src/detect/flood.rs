//! Floods, from one interval's counter deltas: per source (SYN, UDP, ICMP, packet-rate
//! burst, bandwidth) and for the host as a whole, where a flood spread over many
//! spoofed sources shows up even when no single source crosses its threshold.

use std::net::IpAddr;

use monitor_common::{GlobalCounters, SourceCounters};

use crate::{
    config::{HostThresholds, SourceThresholds},
    model::{
        alert::{AlertKind, AlertSource, Finding, Target, Unit},
        format::thousands,
    },
};

fn per_sec(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds
}

/// One decimal, as the stats lines have it.
fn round(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

fn finding(
    kind: AlertKind,
    source: AlertSource,
    target: &Target,
    value: f64,
    threshold: u64,
    unit: Unit,
    message: String,
) -> Finding {
    Finding {
        kind,
        source,
        target: target.clone(),
        value: round(value),
        threshold: threshold as f64,
        unit,
        message,
        flow: None,
        connection: None,
    }
}

/// What one source sent in the interval, and how it is treated.
#[derive(Clone, Copy, Debug)]
pub struct SourceTraffic<'a> {
    pub ip: IpAddr,
    pub delta: &'a SourceCounters,
    /// SYN-ACKs the host sent back to this source, when the backend counts them.
    pub syn_ack_sent: Option<u64>,
    /// A local source, left out of the burst (pps, bandwidth) checks.
    pub burst_exempt: bool,
}

/// Whether a source's SYN-ACK count can change what [`source_floods`] finds: only when
/// its SYN rate reaches one of the SYN thresholds (the rate's, or the ratio check's
/// minimum); below both, any count finds the same.
pub fn syn_acks_matter(delta: &SourceCounters, seconds: f64, t: &SourceThresholds) -> bool {
    let syn_rate = per_sec(delta.syn, seconds);
    syn_rate >= t.syn_per_sec.get() as f64 || syn_rate >= t.syn_ratio_min_syn_per_sec.get() as f64
}

/// The floods one source is sending. A protocol flood (SYN, UDP, ICMP) already says
/// what the packet rate would, so the generic packet-rate burst is reported only when
/// no protocol flood is.
pub fn source_floods(
    traffic: &SourceTraffic<'_>,
    seconds: f64,
    t: &SourceThresholds,
    target: &Target,
) -> Vec<Finding> {
    let mut found = Vec::new();
    if seconds <= 0.0 {
        return found;
    }
    let d = traffic.delta;
    let source = AlertSource::Ip(traffic.ip);
    let pps = per_sec(d.packets, seconds);
    let bytes_per_sec = per_sec(d.bytes, seconds);
    let syn_rate = per_sec(d.syn, seconds);

    let ratio = traffic
        .syn_ack_sent
        .map(|acks| d.syn as f64 / acks.max(1) as f64);
    let by_rate = syn_rate >= t.syn_per_sec.get() as f64;
    let by_ratio = ratio.is_some_and(|r| r >= t.syn_ratio.get())
        && syn_rate >= t.syn_ratio_min_syn_per_sec.get() as f64;
    if by_rate || by_ratio {
        let threshold = if by_rate {
            t.syn_per_sec.get()
        } else {
            t.syn_ratio_min_syn_per_sec.get()
        };
        let mut message = format!(
            "SYN rate {} (threshold {})",
            Unit::SynPerSec.format(syn_rate),
            Unit::SynPerSec.format(threshold as f64)
        );
        if traffic.syn_ack_sent == Some(0) {
            message.push_str(", no SYN-ACK sent back");
            if !by_rate {
                message.push_str(&format!(" (ratio threshold {})", t.syn_ratio.get()));
            }
        } else if let Some(ratio) = ratio {
            message.push_str(&format!(", SYN:SYN-ACK ratio ~{ratio:.1}"));
            if !by_rate {
                message.push_str(&format!(" (threshold {})", t.syn_ratio.get()));
            }
        }
        found.push(finding(
            AlertKind::SynFlood,
            source,
            target,
            syn_rate,
            threshold,
            Unit::SynPerSec,
            message,
        ));
    }
    for (kind, name, count, threshold) in [
        (AlertKind::UdpFlood, "UDP", d.udp, t.udp_pps.get()),
        (AlertKind::IcmpFlood, "ICMP", d.icmp, t.icmp_pps.get()),
    ] {
        let rate = per_sec(count, seconds);
        if rate >= threshold as f64 {
            let message = format!(
                "{name} rate {} (threshold {})",
                Unit::Pps.format(rate),
                Unit::Pps.format(threshold as f64)
            );
            found.push(finding(
                kind,
                source,
                target,
                rate,
                threshold,
                Unit::Pps,
                message,
            ));
        }
    }
    if traffic.burst_exempt {
        return found;
    }
    if found.is_empty() && pps >= t.pps.get() as f64 {
        let message = format!(
            "packet rate {} (threshold {}), {}",
            Unit::Pps.format(pps),
            Unit::Pps.format(t.pps.get() as f64),
            Unit::BytesPerSec.format(bytes_per_sec)
        );
        found.push(finding(
            AlertKind::PpsBurst,
            source,
            target,
            pps,
            t.pps.get(),
            Unit::Pps,
            message,
        ));
    }
    if bytes_per_sec >= t.bytes_per_sec.get() as f64 {
        let message = format!(
            "bandwidth {} (threshold {}), {}",
            Unit::BytesPerSec.format(bytes_per_sec),
            Unit::BytesPerSec.format(t.bytes_per_sec.get() as f64),
            Unit::Pps.format(pps)
        );
        found.push(finding(
            AlertKind::Bandwidth,
            source,
            target,
            bytes_per_sec,
            t.bytes_per_sec.get(),
            Unit::BytesPerSec,
            message,
        ));
    }
    found
}

/// A source as the host-wide check sees it.
#[derive(Clone, Copy, Debug)]
pub struct SourceShare<'a> {
    pub delta: &'a SourceCounters,
    /// Never alerts, so its traffic is not counted against the host.
    pub allowlisted: bool,
    /// Not counted against the host's burst (pps, bandwidth) thresholds.
    pub burst_exempt: bool,
    /// Raised a flood finding of its own this interval.
    pub named: bool,
}

struct HostMetric {
    kind: AlertKind,
    label: &'static str,
    unit: Unit,
    threshold: u64,
    host: fn(&GlobalCounters) -> u64,
}

/// Floods against the host as a whole, reported with source `many`. Traffic of
/// allowlisted (and, for bursts, local) sources is not counted. When the sources that
/// raised their own findings explain half or more of a host-wide excess, the host-wide
/// finding is left out: it would only repeat them with less detail. As for one source,
/// the packet-rate burst stands back when a protocol flood is found.
pub fn host_floods(
    host: &GlobalCounters,
    sources: &[SourceShare<'_>],
    seconds: f64,
    t: &HostThresholds,
    target: &Target,
) -> Vec<Finding> {
    let mut shares = HostShares::default();
    for source in sources {
        shares.add(source);
    }
    host_floods_summed(host, &shares, seconds, t, target)
}

/// What the host-wide check needs from the sources, summed one source at a time: per
/// metric (SYN, UDP, ICMP, packets, bytes), the traffic not counted against the host,
/// the traffic of sources that raised their own findings, and the senders. The
/// detector sums while it checks each source, in the same pass: under a random-source
/// flood a pass over 65,536 sources per metric cost more than the checks themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostShares {
    metrics: [MetricShare; 5],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MetricShare {
    excluded: u64,
    explained: u64,
    senders: usize,
}

impl HostShares {
    pub fn add(&mut self, share: &SourceShare<'_>) {
        let d = share.delta;
        // (count, whether it is a burst metric), in the order of `host_floods_summed`.
        let counts = [
            (d.syn, false),
            (d.udp, false),
            (d.icmp, false),
            (d.packets, true),
            (d.bytes, true),
        ];
        for (metric, (count, burst)) in self.metrics.iter_mut().zip(counts) {
            if count == 0 {
                continue;
            }
            if share.allowlisted || (burst && share.burst_exempt) {
                metric.excluded += count;
            } else {
                metric.senders += 1;
                if share.named {
                    metric.explained += count;
                }
            }
        }
    }
}

/// [`host_floods`] from the sources' shares already summed.
pub fn host_floods_summed(
    host: &GlobalCounters,
    shares: &HostShares,
    seconds: f64,
    t: &HostThresholds,
    target: &Target,
) -> Vec<Finding> {
    let mut found = Vec::new();
    if seconds <= 0.0 {
        return found;
    }
    let metrics = [
        HostMetric {
            kind: AlertKind::SynFlood,
            label: "SYN rate",
            unit: Unit::SynPerSec,
            threshold: t.syn_per_sec.get(),
            host: |c| c.syn,
        },
        HostMetric {
            kind: AlertKind::UdpFlood,
            label: "UDP rate",
            unit: Unit::Pps,
            threshold: t.udp_pps.get(),
            host: |c| c.udp.packets,
        },
        HostMetric {
            kind: AlertKind::IcmpFlood,
            label: "ICMP rate",
            unit: Unit::Pps,
            threshold: t.icmp_pps.get(),
            host: |c| c.icmp.packets,
        },
        HostMetric {
            kind: AlertKind::PpsBurst,
            label: "packet rate",
            unit: Unit::Pps,
            threshold: t.pps.get(),
            host: |c| c.total.packets,
        },
        HostMetric {
            kind: AlertKind::Bandwidth,
            label: "bandwidth",
            unit: Unit::BytesPerSec,
            threshold: t.bytes_per_sec.get(),
            host: |c| c.total.bytes,
        },
    ];
    let mut protocol_flood = false;
    for (m, share) in metrics.iter().zip(&shares.metrics) {
        let MetricShare {
            excluded,
            explained,
            senders,
        } = *share;
        let counted = (m.host)(host).saturating_sub(excluded);
        let rate = per_sec(counted, seconds);
        if rate < m.threshold as f64 {
            continue;
        }
        if matches!(
            m.kind,
            AlertKind::SynFlood | AlertKind::UdpFlood | AlertKind::IcmpFlood
        ) {
            protocol_flood = true;
        } else if m.kind == AlertKind::PpsBurst && protocol_flood {
            continue;
        }
        if explained.saturating_mul(2) >= counted {
            continue;
        }
        let message = format!(
            "host-wide {} {} (threshold {}) from {} sources",
            m.label,
            m.unit.format(rate),
            m.unit.format(m.threshold as f64),
            thousands(senders as u64)
        );
        found.push(finding(
            m.kind,
            AlertSource::Many,
            target,
            rate,
            m.threshold,
            m.unit,
            message,
        ));
    }
    found
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the values asserted are exact in binary (whole counts over exact intervals); a tolerance would loosen the tests"
)]
mod tests {
    use super::*;
    use crate::{config::Positive, detect::fixtures::eth0};

    fn counters(packets: u64, bytes: u64, syn: u64, udp: u64, icmp: u64) -> SourceCounters {
        SourceCounters {
            packets,
            bytes,
            syn,
            udp,
            icmp,
            ..Default::default()
        }
    }

    fn source(delta: &SourceCounters) -> SourceTraffic<'_> {
        SourceTraffic {
            ip: "203.0.113.7".parse().unwrap(),
            delta,
            syn_ack_sent: None,
            burst_exempt: false,
        }
    }

    fn kinds(found: &[Finding]) -> Vec<AlertKind> {
        found.iter().map(|f| f.kind).collect()
    }

    fn per_source(delta: &SourceCounters, seconds: f64) -> Vec<Finding> {
        source_floods(
            &source(delta),
            seconds,
            &SourceThresholds::default(),
            &eth0(),
        )
    }

    #[test]
    fn syn_flood_from_one_source() {
        // hping3 -S --flood: 60,000 SYNs of 60 bytes in a 250 ms interval.
        let delta = counters(60_000, 3_600_000, 60_000, 0, 0);
        let found = per_source(&delta, 0.25);
        assert_eq!(kinds(&found), [AlertKind::SynFlood]);
        let f = &found[0];
        assert_eq!(f.source.to_string(), "203.0.113.7");
        assert_eq!(
            (f.value, f.threshold, f.unit),
            (240_000.0, 500.0, Unit::SynPerSec)
        );
        assert_eq!(f.target, "eth0");
        assert_eq!(f.message, "SYN rate 240,000 SYN/s (threshold 500 SYN/s)");
    }

    #[test]
    fn syn_ratio_catches_failing_handshakes_below_the_rate() {
        let delta = counters(200, 12_000, 200, 0, 0);
        let mut traffic = source(&delta);
        let t = SourceThresholds::default();
        assert!(
            source_floods(&traffic, 1.0, &t, &eth0()).is_empty(),
            "no SYN-ACK data: rate only"
        );
        traffic.syn_ack_sent = Some(180);
        assert!(
            source_floods(&traffic, 1.0, &t, &eth0()).is_empty(),
            "handshakes complete"
        );
        traffic.syn_ack_sent = Some(10);
        let found = source_floods(&traffic, 1.0, &t, &eth0());
        assert_eq!(kinds(&found), [AlertKind::SynFlood]);
        assert_eq!((found[0].value, found[0].threshold), (200.0, 100.0));
        assert!(
            found[0].message.contains("SYN:SYN-ACK ratio ~20.0"),
            "{}",
            found[0].message
        );
        let strict = SourceThresholds {
            syn_ratio: Positive(50.0),
            ..t
        };
        assert!(source_floods(&traffic, 1.0, &strict, &eth0()).is_empty());
    }

    #[test]
    fn syn_acks_change_nothing_where_they_do_not_matter() {
        let t = SourceThresholds::default();
        let (mut mattered, mut did_not) = (0, 0);
        for syn in [0, 1, 24, 25, 99, 100, 101, 124, 125, 499, 500, 501, 5_000] {
            for seconds in [0.25, 1.0] {
                let delta = counters(syn + 10, (syn + 10) * 60, syn, 0, 0);
                let mut traffic = source(&delta);
                traffic.syn_ack_sent = Some(0);
                let without = source_floods(&traffic, seconds, &t, &eth0());
                let matters = syn_acks_matter(&delta, seconds, &t);
                let mut differs = false;
                for acks in [1, 10, 1_000_000] {
                    traffic.syn_ack_sent = Some(acks);
                    differs |= source_floods(&traffic, seconds, &t, &eth0()) != without;
                }
                assert!(matters || !differs, "{syn} SYNs in {seconds} s");
                if matters {
                    mattered += 1;
                } else {
                    did_not += 1;
                }
            }
        }
        assert!(mattered > 0 && did_not > 0, "{mattered} {did_not}");
    }

    #[test]
    fn udp_and_icmp_floods_stand_in_for_the_packet_rate() {
        let udp = counters(30_000, 15_000_000, 0, 30_000, 0);
        let found = per_source(&udp, 1.0);
        assert_eq!(kinds(&found), [AlertKind::UdpFlood]);
        assert_eq!((found[0].value, found[0].threshold), (30_000.0, 4_000.0));

        let icmp = counters(1_000, 84_000, 0, 0, 1_000);
        let found = per_source(&icmp, 1.0);
        assert_eq!(kinds(&found), [AlertKind::IcmpFlood]);
        assert_eq!(
            (found[0].value, found[0].threshold, found[0].unit),
            (1_000.0, 500.0, Unit::Pps)
        );
    }

    #[test]
    fn packet_burst_and_bandwidth() {
        // 5,000 small TCP packets a second: a burst, not a protocol flood.
        let burst = counters(5_000, 400_000, 10, 0, 0);
        let found = per_source(&burst, 1.0);
        assert_eq!(kinds(&found), [AlertKind::PpsBurst]);
        assert_eq!((found[0].value, found[0].threshold), (5_000.0, 4_000.0));

        // 30 MB/s in full-size frames: bandwidth (and a burst).
        let fat = counters(20_000, 30_000_000, 0, 0, 0);
        let found = per_source(&fat, 1.0);
        assert_eq!(kinds(&found), [AlertKind::PpsBurst, AlertKind::Bandwidth]);
        assert_eq!(
            (found[1].value, found[1].threshold, found[1].unit),
            (30_000_000.0, 20_000_000.0, Unit::BytesPerSec)
        );
    }

    #[test]
    fn local_sources_are_left_out_of_bursts_but_not_floods() {
        let fat = counters(20_000, 30_000_000, 0, 20_000, 0);
        let mut traffic = source(&fat);
        traffic.ip = "192.168.1.20".parse().unwrap();
        traffic.burst_exempt = true;
        let found = source_floods(&traffic, 1.0, &SourceThresholds::default(), &eth0());
        assert_eq!(kinds(&found), [AlertKind::UdpFlood]);
    }

    #[test]
    fn normal_traffic_is_quiet() {
        // A 5 MB download in one second: ~3,500 full frames.
        assert!(per_source(&counters(3_500, 5_200_000, 1, 0, 0), 1.0).is_empty());
        // A few pings.
        assert!(per_source(&counters(4, 336, 0, 0, 4), 1.0).is_empty());
        // A short burst below the thresholds, in a 250 ms interval.
        assert!(per_source(&counters(900, 1_300_000, 20, 100, 0), 0.25).is_empty());
        // A DNS server's replies.
        assert!(per_source(&counters(300, 45_000, 0, 300, 0), 1.0).is_empty());
        assert!(per_source(&counters(0, 0, 0, 0, 0), 0.0).is_empty());
    }

    fn host_with(packets: u64, bytes: u64, syn: u64, udp: u64, icmp: u64) -> GlobalCounters {
        let mut c = GlobalCounters::default();
        c.total.packets = packets;
        c.total.bytes = bytes;
        c.syn = syn;
        c.tcp.packets = syn;
        c.udp.packets = udp;
        c.icmp.packets = icmp;
        c
    }

    #[test]
    fn spread_out_spoofed_syn_flood_raises_the_host_alert() {
        // hping3 -S --flood --rand-source: 30,000 SYNs in 250 ms from 30,000 sources,
        // one SYN each, far under the per-source threshold.
        let one_syn = counters(1, 60, 1, 0, 0);
        let deltas = vec![one_syn; 30_000];
        let shares: Vec<_> = deltas
            .iter()
            .map(|delta| SourceShare {
                delta,
                allowlisted: false,
                burst_exempt: false,
                named: false,
            })
            .collect();
        let host = host_with(30_000, 1_800_000, 30_000, 0, 0);
        let found = host_floods(&host, &shares, 0.25, &HostThresholds::default(), &eth0());
        // A SYN flood, not also a packet burst.
        assert_eq!(kinds(&found), [AlertKind::SynFlood]);
        let f = &found[0];
        assert_eq!(f.source.to_string(), "many");
        assert_eq!((f.value, f.threshold), (120_000.0, 10_000.0));
        assert!(f.message.ends_with("from 30,000 sources"), "{}", f.message);
        // The per-source check finds nothing for any of them.
        let traffic = source(&deltas[0]);
        assert!(source_floods(&traffic, 0.25, &SourceThresholds::default(), &eth0()).is_empty());
    }

    #[test]
    fn host_alert_stands_back_when_named_sources_explain_it() {
        let big = counters(60_000, 3_600_000, 60_000, 0, 0);
        let host = host_with(60_100, 3_700_000, 60_000, 0, 0);
        let named = [SourceShare {
            delta: &big,
            allowlisted: false,
            burst_exempt: false,
            named: true,
        }];
        assert!(host_floods(&host, &named, 1.0, &HostThresholds::default(), &eth0()).is_empty());
        let unnamed = [SourceShare {
            named: false,
            ..named[0]
        }];
        assert_eq!(
            kinds(&host_floods(
                &host,
                &unnamed,
                1.0,
                &HostThresholds::default(),
                &eth0()
            )),
            [AlertKind::SynFlood]
        );
    }

    #[test]
    fn allowlisted_and_local_traffic_does_not_count_against_the_host() {
        // A LAN backup at 80,000 pps and an allowlisted peer at 30,000 pps.
        let backup = counters(80_000, 120_000_000, 0, 0, 0);
        let peer = counters(30_000, 40_000_000, 0, 0, 0);
        let host = host_with(115_000, 165_000_000, 0, 0, 0);
        let shares = [
            SourceShare {
                delta: &backup,
                allowlisted: false,
                burst_exempt: true,
                named: false,
            },
            SourceShare {
                delta: &peer,
                allowlisted: true,
                burst_exempt: false,
                named: false,
            },
        ];
        assert!(host_floods(&host, &shares, 1.0, &HostThresholds::default(), &eth0()).is_empty());
        let counted = [
            SourceShare {
                burst_exempt: false,
                ..shares[0]
            },
            shares[1],
        ];
        let found = host_floods(&host, &counted, 1.0, &HostThresholds::default(), &eth0());
        assert_eq!(kinds(&found), [AlertKind::PpsBurst, AlertKind::Bandwidth]);
        assert_eq!(found[0].value, 85_000.0);
    }

    #[test]
    fn busy_but_normal_host_is_quiet() {
        let host = host_with(20_000, 25_000_000, 300, 2_000, 10);
        assert!(host_floods(&host, &[], 1.0, &HostThresholds::default(), &eth0()).is_empty());
    }
}
