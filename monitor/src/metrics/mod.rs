//! Prometheus metrics (`--metrics 127.0.0.1:9850`): what the monitor counted and did,
//! served at `/metrics` for a Prometheus server to scrape.
//!
//! The loop hands every interval's stats, alerts and captures to [`Metrics`] (it is a
//! [`Reporter`], teed beside the stdout one); a scrape encodes the latest values with
//! the `prometheus-client` crate (OpenMetrics text). The values are kept as plain data
//! and turned into [`MetricFamily`]s by [`families`], a pure function: adding a family
//! (e.g. mitigation drops) is one more `push` there, with its name, help and samples.
//! Every name starts with `monitor_`; counters end in `_total`, byte counts in `_bytes`.
//! Label sets stay bounded: protocol, family, flag, alert kind and severity are closed
//! sets, sinks are the configured ones, and only the interval's top sources (as many
//! as `--top`) are labelled by address, replaced every interval.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use monitor_common::GlobalCounters;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use crate::{
    delivery::{SinkStats, SinkStatsSource},
    model::{
        alert::{AlertEvent, AlertKind, AlertSource, Severity, Target},
        capture::CaptureDone,
        snapshot::CaptureDrops,
    },
    report::{Reporter, RunInfo},
    stats::{IntervalStats, Rates, SourceRate},
};

pub mod server;

/// Everything the metrics are made of, as of the last interval.
#[derive(Clone, Debug, Default)]
pub struct MetricsState {
    pub backend: String,
    pub iface: String,
    pub description: String,
    pub started: Option<SystemTime>,
    pub totals: GlobalCounters,
    pub rates: Rates,
    pub top_sources: Vec<SourceRate>,
    /// Packets the capture lost (pcap backend only), cumulative.
    pub capture_drops: Option<CaptureDrops>,
    /// Alerts raised since start, by kind and severity.
    pub alerts_raised: BTreeMap<(AlertKind, Severity), u64>,
    /// Alerts raised and not yet ended: (kind, source, target) -> severity.
    pub active_alerts: HashMap<(AlertKind, AlertSource, Target), Severity>,
    pub captures_written: u64,
    pub captures_failed: u64,
    /// Bans placed since start, unbans by reason, and the sources banned now.
    pub bans_placed: u64,
    pub unbans: BTreeMap<&'static str, u64>,
    pub active_bans: std::collections::HashSet<std::net::IpAddr>,
    pub sinks: Vec<SinkStats>,
}

impl MetricsState {
    pub fn start(&mut self, run: &RunInfo, now: SystemTime) {
        run.backend.clone_into(&mut self.backend);
        self.iface.clone_from(&run.iface);
        self.description.clone_from(&run.description);
        self.started = Some(now);
    }

    pub fn interval(&mut self, stats: &IntervalStats) {
        self.totals = stats.totals;
        self.rates = stats.rates.clone();
        self.top_sources.clone_from(&stats.top_sources);
        self.capture_drops = stats.capture_drops;
    }

    pub fn alerts(&mut self, events: &[AlertEvent]) {
        for event in events {
            match event {
                AlertEvent::Alert(a) => {
                    *self.alerts_raised.entry((a.kind, a.severity)).or_default() += 1;
                    self.active_alerts
                        .insert((a.kind, a.source, a.target.clone()), a.severity);
                }
                AlertEvent::AlertEnd(e) => {
                    self.active_alerts
                        .remove(&(e.kind, e.source, e.target.clone()));
                }
                AlertEvent::Ban(b) => {
                    self.bans_placed += 1;
                    self.active_bans.insert(b.address);
                }
                AlertEvent::Unban(u) => {
                    *self.unbans.entry(u.reason.as_str()).or_default() += 1;
                    self.active_bans.remove(&u.address);
                }
            }
        }
    }

    pub fn capture(&mut self, done: &CaptureDone) {
        if done.error.is_some() {
            self.captures_failed += 1;
        } else {
            self.captures_written += 1;
        }
    }

    /// The monitor stopped: the last totals, nothing current any more.
    pub fn finish(&mut self, totals: &GlobalCounters) {
        self.totals = *totals;
        self.rates = Rates::default();
        self.top_sources.clear();
    }
}

/// One sample's value: counters stay whole numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// Labels of one sample, as (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// One metric family: a name (without the `monitor_` prefix, the unit and `_total`,
/// which the encoder adds), its help text, and its samples.
#[derive(Clone, Debug)]
pub struct MetricFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub unit: Option<Unit>,
    pub samples: Vec<(Labels, Value)>,
}

impl MetricFamily {
    fn new(name: &'static str, help: &'static str, kind: MetricType, unit: Option<Unit>) -> Self {
        Self {
            name,
            help,
            kind,
            unit,
            samples: Vec::new(),
        }
    }

    fn counter(name: &'static str, help: &'static str) -> Self {
        Self::new(name, help, MetricType::Counter, None)
    }

    fn byte_counter(name: &'static str, help: &'static str) -> Self {
        Self::new(name, help, MetricType::Counter, Some(Unit::Bytes))
    }

    fn gauge(name: &'static str, help: &'static str) -> Self {
        Self::new(name, help, MetricType::Gauge, None)
    }

    fn sample(mut self, labels: Labels, value: Value) -> Self {
        self.samples.push((labels, value));
        self
    }

    fn int(self, labels: Labels, value: u64) -> Self {
        self.sample(labels, Value::Int(value))
    }

    fn float(self, labels: Labels, value: f64) -> Self {
        self.sample(labels, Value::Float(value))
    }
}

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

const ALL_KINDS: [AlertKind; 11] = [
    AlertKind::SynFlood,
    AlertKind::UdpFlood,
    AlertKind::IcmpFlood,
    AlertKind::PpsBurst,
    AlertKind::Bandwidth,
    AlertKind::Spike,
    AlertKind::PortScan,
    AlertKind::LargeDownload,
    AlertKind::Blocklisted,
    AlertKind::BlocklistedConnection,
    AlertKind::ExcessiveConnections,
];

/// The metric families for `state`, in the order they are served.
#[expect(
    clippy::similar_names,
    reason = "`top_pps` and `top_bps` are the metrics' own names"
)]
pub fn families(state: &MetricsState) -> Vec<MetricFamily> {
    let t = &state.totals;
    let classes = [
        ("tcp", t.tcp),
        ("udp", t.udp),
        ("icmp", t.icmp),
        ("other", t.other),
        ("non_ip", t.non_ip),
        ("malformed", t.malformed),
    ];
    let mut packets = MetricFamily::counter(
        "packets",
        "Frames received on the interface, by protocol class (tcp, udp, icmp incl. ICMPv6, other IP, non_ip, malformed); the classes add up to every frame.",
    );
    let mut bytes = MetricFamily::byte_counter(
        "received",
        "Bytes of the frames received (Ethernet header included), by protocol class.",
    );
    for (protocol, tally) in classes {
        packets = packets.int(label("protocol", protocol), tally.packets);
        bytes = bytes.int(label("protocol", protocol), tally.bytes);
    }
    let mut ip_packets =
        MetricFamily::counter("ip_packets", "Frames with a valid IP header, by family.");
    let mut ip_bytes = MetricFamily::byte_counter(
        "ip_received",
        "Bytes of the frames with a valid IP header, by family.",
    );
    for (family, tally) in [("ipv4", t.ipv4), ("ipv6", t.ipv6)] {
        ip_packets = ip_packets.int(label("family", family), tally.packets);
        ip_bytes = ip_bytes.int(label("family", family), tally.bytes);
    }
    let flags = MetricFamily::counter(
        "tcp_flags",
        "TCP segments received by flag: syn (SYN without ACK: connection attempts), syn_ack, rst, fin.",
    )
    .int(label("flag", "syn"), t.syn)
    .int(label("flag", "syn_ack"), t.syn_ack)
    .int(label("flag", "rst"), t.rst)
    .int(label("flag", "fin"), t.fin);
    let fragments = MetricFamily::counter("fragments", "IPv4 and IPv6 fragments received.")
        .int(vec![], t.fragments);

    let r = &state.rates;
    let pps = MetricFamily::gauge(
        "current_packets_per_second",
        "Packets per second over the last polling interval.",
    )
    .float(vec![], r.pps);
    let bps = MetricFamily::gauge(
        "current_bits_per_second",
        "Bits per second over the last polling interval.",
    )
    .float(vec![], r.bits_per_sec);

    let mut top_pps = MetricFamily::gauge(
        "top_source_packets_per_second",
        "Packets per second of the top sources of the last interval (as many as --top; the set is replaced every interval).",
    );
    let mut top_bps = MetricFamily::gauge(
        "top_source_bits_per_second",
        "Bits per second of the top sources of the last interval.",
    );
    let mut top_syn = MetricFamily::gauge(
        "top_source_syn_per_second",
        "TCP SYNs per second of the top sources of the last interval.",
    );
    for (rank, source) in state.top_sources.iter().enumerate() {
        let labels = vec![
            ("source", source.ip.to_string()),
            ("rank", (rank + 1).to_string()),
        ];
        top_pps = top_pps.float(labels.clone(), source.pps);
        top_bps = top_bps.float(labels.clone(), source.bits_per_sec);
        top_syn = top_syn.float(labels, source.syn_per_sec);
    }

    let mut raised =
        MetricFamily::counter("alerts", "Alerts raised since start, by kind and severity.");
    for (&(kind, severity), &n) in &state.alerts_raised {
        raised = raised.int(
            vec![
                ("kind", kind.as_str().into()),
                ("severity", severity.as_str().into()),
            ],
            n,
        );
    }
    // Every kind is present (zero when quiet), so that an alerting rule can tell
    // "no flood" from "no data".
    let mut active =
        MetricFamily::gauge("active_alerts", "Alerts raised and not yet ended, by kind.");
    for kind in ALL_KINDS {
        let n = state
            .active_alerts
            .keys()
            .filter(|(k, _, _)| *k == kind)
            .count();
        active = active.int(label("kind", kind.as_str()), n as u64);
    }

    let captures = MetricFamily::counter(
        "captures",
        "Triggered pcap captures that ended, by result: written (whole), failed (missing or cut short).",
    )
    .int(label("result", "written"), state.captures_written)
    .int(label("result", "failed"), state.captures_failed);

    let dropped = MetricFamily::counter(
        "mitigation_dropped_packets",
        "Frames mitigation dropped in XDP, from blocklisted and banned sources (with --mitigate=dry-run: would have dropped). Also counted in monitor_packets_total.",
    )
    .int(vec![], t.dropped.packets);
    let dropped_bytes = MetricFamily::byte_counter(
        "mitigation_dropped",
        "Bytes of the frames mitigation dropped (dry-run: would have dropped).",
    )
    .int(vec![], t.dropped.bytes);
    let bans = MetricFamily::counter("bans", "Sources banned by mitigation since start.")
        .int(vec![], state.bans_placed);
    let mut unbans = MetricFamily::counter(
        "unbans",
        "Bans ended since start, by reason: expired, operator (monitor bans unban), shutdown.",
    );
    for reason in ["expired", "operator", "shutdown"] {
        let n = state.unbans.get(reason).copied().unwrap_or(0);
        unbans = unbans.int(label("reason", reason), n);
    }
    let active_bans = MetricFamily::gauge("active_bans", "Sources banned now.")
        .int(vec![], state.active_bans.len() as u64);

    let mut notices = MetricFamily::counter(
        "sink_notices",
        "Alerts, ends and capture notes per sink (log, json_log, discord, slack, teams, generic) by outcome: delivered, failed (gave up), dropped (queue full).",
    );
    let mut pending = MetricFamily::gauge(
        "sink_pending_notices",
        "Notices queued or in flight per sink.",
    );
    for sink in &state.sinks {
        let labels = |outcome: &'static str| {
            vec![
                ("sink", sink.kind.to_owned()),
                ("target", sink.target.clone()),
                ("outcome", outcome.to_owned()),
            ]
        };
        notices = notices
            .int(labels("delivered"), sink.delivered)
            .int(labels("failed"), sink.failed)
            .int(labels("dropped"), sink.dropped);
        pending = pending.int(
            vec![
                ("sink", sink.kind.to_owned()),
                ("target", sink.target.clone()),
            ],
            sink.pending,
        );
    }

    let mut out = vec![
        packets,
        bytes,
        ip_packets,
        ip_bytes,
        flags,
        fragments,
        pps,
        bps,
        top_pps,
        top_bps,
        top_syn,
        raised,
        active,
        captures,
        dropped,
        dropped_bytes,
        bans,
        unbans,
        active_bans,
        notices,
        pending,
    ];
    // Only a backend that can lose packets (pcap) has the family: XDP counts in the
    // kernel, before any buffer.
    if let Some(drops) = state.capture_drops {
        out.push(
            MetricFamily::counter(
                "capture_dropped_packets",
                "Packets libpcap lost (pcap backend only), by cause: buffer (the capture buffer was full, ps_drop), interface (dropped by the interface or its driver, ps_ifdrop). The other counts are short by as many.",
            )
            .int(label("cause", "buffer"), drops.dropped)
            .int(label("cause", "interface"), drops.if_dropped),
        );
    }
    if let Some(started) = state.started {
        let secs = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        out.push(
            MetricFamily::new(
                "start_time",
                "When the monitor started, seconds since the Unix epoch.",
                MetricType::Gauge,
                Some(Unit::Seconds),
            )
            .float(vec![], secs),
        );
    }
    out
}

fn encode_value(
    kind: MetricType,
    value: Value,
    encoder: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (MetricType::Counter, Value::Int(v)) => ConstCounter::new(v).encode(encoder),
        (MetricType::Counter, Value::Float(v)) => ConstCounter::new(v).encode(encoder),
        (_, Value::Int(v)) => ConstGauge::new(v as i64).encode(encoder),
        (_, Value::Float(v)) => ConstGauge::new(v).encode(encoder),
    }
}

/// Encodes the families, then the info metric naming the backend and interface.
fn encode(state: &MetricsState, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    for family in families(state) {
        let mut metric = encoder.encode_descriptor(
            family.name,
            family.help,
            family.unit.as_ref(),
            family.kind,
        )?;
        for (labels, value) in &family.samples {
            // A family of one unlabelled sample is written without `{}`.
            if labels.is_empty() {
                encode_value(family.kind, *value, metric)?;
                break;
            }
            encode_value(family.kind, *value, metric.encode_family(labels)?)?;
        }
    }
    let mut info = encoder.encode_descriptor(
        "run",
        "What is monitored and how: backend, interface, description, version (value 1).",
        None,
        MetricType::Info,
    )?;
    info.encode_info(&vec![
        ("backend", state.backend.clone()),
        ("iface", state.iface.clone()),
        ("description", state.description.clone()),
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
    ])?;
    Ok(())
}

/// The shared state behind the `/metrics` endpoint.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    state: Arc<Mutex<MetricsState>>,
    sinks: Option<SinkStatsSource>,
}

impl Metrics {
    /// `sinks` reads the alert sinks' counts at each scrape.
    pub fn new(sinks: Option<SinkStatsSource>) -> Self {
        Self {
            state: Arc::default(),
            sinks,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MetricsState) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// The exposition text (OpenMetrics), as a scrape gets it.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("monitor");
        registry.register_collector(Box::new(Snapshot(self.current())));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// A copy of the state, the sinks' counts read now.
    pub fn current(&self) -> MetricsState {
        let mut state = self.with(|s| s.clone());
        if let Some(sinks) = &self.sinks {
            state.sinks = sinks.stats();
        }
        state
    }
}

/// One scrape's values.
#[derive(Debug)]
struct Snapshot(MetricsState);

impl Collector for Snapshot {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode(&self.0, encoder)
    }
}

impl Reporter for Metrics {
    fn start(&mut self, run: &RunInfo) {
        self.with(|s| s.start(run, SystemTime::now()));
    }

    fn interval(&mut self, _run: &RunInfo, stats: &IntervalStats) {
        self.with(|s| s.interval(stats));
    }

    fn alerts(&mut self, _run: &RunInfo, events: &[AlertEvent]) {
        self.with(|s| s.alerts(events));
    }

    fn capture(&mut self, _run: &RunInfo, done: &CaptureDone) {
        self.with(|s| s.capture(done));
    }

    fn finish(&mut self, _run: &RunInfo, totals: &GlobalCounters, _elapsed: Duration) {
        self.with(|s| s.finish(totals));
    }
}

#[cfg(test)]
mod tests;
