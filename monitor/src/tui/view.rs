//! What the dashboard shows ([`Dashboard`], fed by the same per-interval stats and
//! alert events as the plain report) and how it is drawn ([`draw`]): a pure function
//! of the model, so tests render it into ratatui's `TestBackend`.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use monitor_common::GlobalCounters;
use ratatui::{
    Frame,
    layout::{Alignment, Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    symbols::Marker,
    text::{Line, Span},
    widgets::{
        Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row, Table,
    },
};

use crate::{
    alert::human::render,
    model::{
        alert::{AlertEvent, AlertKind, AlertSource, Severity},
        format::{bitrate, thousands},
        snapshot::CaptureDrops,
    },
    stats::{IntervalStats, Rates, SourceRate},
};

/// How far back the charts reach.
pub const HISTORY: Duration = Duration::from_secs(300);
/// Lines kept in the recent-events list.
const RECENT: usize = 50;
/// Below this the dashboard asks for a bigger terminal instead of drawing.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// How the top talkers are ordered (`s` cycles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Pps,
    Bps,
    Syn,
}

impl SortKey {
    #[must_use]
    pub fn next(self) -> Self {
        match self {
            Self::Pps => Self::Bps,
            Self::Bps => Self::Syn,
            Self::Syn => Self::Pps,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pps => "pps",
            Self::Bps => "bps",
            Self::Syn => "syn",
        }
    }
}

/// An entry of the events list: an alert, its end, a capture or a log line.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLine {
    pub text: String,
    /// `None` for an end, a capture note or a log line.
    pub severity: Option<Severity>,
}

/// Everything the dashboard shows.
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    /// e.g. `xdp (native mode) on eth0`.
    pub description: String,
    pub backend: String,
    pub iface: String,
    pub filter: Option<String>,
    /// Time since the start of the newest interval's end.
    pub elapsed: Duration,
    /// (seconds since start, pps, bits/s), oldest first, over [`HISTORY`].
    pub history: VecDeque<(f64, f64, f64)>,
    pub rates: Rates,
    pub totals: GlobalCounters,
    pub top: Vec<SourceRate>,
    /// Packets the capture lost since start (pcap backend only).
    pub capture_drops: Option<CaptureDrops>,
    pub sort: SortKey,
    /// Alerts raised and not ended, by kind and source.
    pub active: BTreeMap<(AlertKind, AlertSource), EventLine>,
    /// Newest first.
    pub recent: VecDeque<EventLine>,
    pub paused: bool,
    pub stopping: bool,
    pub help: bool,
}

impl Dashboard {
    pub fn interval(&mut self, stats: &IntervalStats, elapsed: Duration) {
        self.elapsed = elapsed;
        let t = elapsed.as_secs_f64();
        self.history
            .push_back((t, stats.rates.pps, stats.rates.bits_per_sec));
        while self
            .history
            .front()
            .is_some_and(|(first, ..)| t - first > HISTORY.as_secs_f64())
        {
            self.history.pop_front();
        }
        self.rates = stats.rates.clone();
        self.totals = stats.totals;
        self.top.clone_from(&stats.top_sources);
        self.capture_drops = stats.capture_drops;
    }

    pub fn alerts(&mut self, events: &[AlertEvent]) {
        for event in events {
            let line = EventLine {
                text: render(event, false),
                severity: match event {
                    AlertEvent::Alert(a) => Some(a.severity),
                    // Ends, bans and unbans are notes.
                    _ => None,
                },
            };
            match event {
                AlertEvent::Alert(a) => {
                    self.active.insert((a.kind, a.source), line.clone());
                }
                AlertEvent::AlertEnd(e) => {
                    self.active.remove(&(e.kind, e.source));
                }
                AlertEvent::Ban(_) | AlertEvent::Unban(_) => {}
            }
            self.note(line);
        }
    }

    pub fn note(&mut self, line: EventLine) {
        self.recent.push_front(line);
        self.recent.truncate(RECENT);
    }

    /// The top talkers in the chosen order.
    pub fn sorted_top(&self) -> Vec<SourceRate> {
        let mut top = self.top.clone();
        let key = |s: &SourceRate| match self.sort {
            SortKey::Pps => s.pps,
            SortKey::Bps => s.bits_per_sec,
            SortKey::Syn => s.syn_per_sec,
        };
        top.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.ip.cmp(&b.ip)));
        top
    }
}

fn severity_style(severity: Option<Severity>) -> Style {
    match severity {
        None => Style::default().fg(Color::Green),
        Some(Severity::Low) => Style::default().fg(Color::Cyan),
        Some(Severity::Medium) => Style::default().fg(Color::Yellow),
        Some(Severity::High) => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        Some(Severity::Critical) => Style::default()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD),
    }
}

fn rate(r: f64) -> String {
    thousands(r.round() as u64)
}

/// Draws the whole dashboard into the frame.
pub fn draw(frame: &mut Frame<'_>, d: &Dashboard) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small ({}x{}); the dashboard needs {MIN_WIDTH}x{MIN_HEIGHT} - q quits",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let [header, charts, middle, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(35),
        Constraint::Min(8),
        Constraint::Percentage(25),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, d);
    let [pps, bps] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    draw_chart(frame, pps, d, "Packets/s", Color::Cyan, |p| p.1, rate);
    draw_chart(frame, bps, d, "Bits/s", Color::Magenta, |p| p.2, bitrate);
    let [mix, talkers] =
        Layout::horizontal([Constraint::Length(36), Constraint::Min(30)]).areas(middle);
    draw_mix(frame, mix, &d.rates);
    draw_talkers(frame, talkers, d);
    draw_events(frame, events, d);
    draw_footer(frame, footer, d);
    if d.help {
        draw_help(frame, area);
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let mut spans = vec![
        Span::styled("monitor ", Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("backend {} on {}", d.backend, d.iface)),
        Span::styled(
            format!(" ({})", d.description),
            Style::default().fg(Color::DarkGray),
        ),
    ];
    if let Some(filter) = &d.filter {
        spans.push(Span::styled(
            format!(" filter: {filter}"),
            Style::default().fg(Color::Yellow),
        ));
    }
    // The pcap backend's losses, always in view: every count on the screen is short
    // by as many.
    if let Some(drops) = d.capture_drops {
        let lost = drops.dropped + drops.if_dropped;
        let colour = if lost == 0 {
            Color::DarkGray
        } else {
            Color::Red
        };
        spans.push(Span::styled(
            format!(
                "  pcap lost {} (buffer {}, interface {})",
                thousands(lost),
                thousands(drops.dropped),
                thousands(drops.if_dropped)
            ),
            Style::default().fg(colour),
        ));
    }
    spans.push(Span::raw(format!("  up {}s", d.elapsed.as_secs())));
    if d.paused {
        spans.push(Span::styled(
            "  PAUSED",
            Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if d.stopping {
        spans.push(Span::styled(
            "  stopping...",
            Style::default().fg(Color::Red),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_chart(
    frame: &mut Frame<'_>,
    area: Rect,
    d: &Dashboard,
    title: &str,
    colour: Color,
    value: impl Fn(&(f64, f64, f64)) -> f64,
    label: impl Fn(f64) -> String,
) {
    let points: Vec<(f64, f64)> = d.history.iter().map(|p| (p.0, value(p))).collect();
    let now = points.last().map_or(0.0, |p| p.0);
    let start = (now - HISTORY.as_secs_f64()).max(0.0);
    let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let top = if peak > 0.0 { peak * 1.1 } else { 1.0 };
    let current = points.last().map_or(0.0, |p| p.1);
    let datasets = vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(colour))
            .data(&points),
    ];
    let chart = Chart::new(datasets)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {title} now {} ", label(current))),
        )
        .x_axis(
            Axis::default()
                .bounds([start, now.max(start + 1.0)])
                .labels(vec![
                    Line::from(format!("-{}s", (now - start).round())),
                    Line::from("now"),
                ])
                .style(Style::default().fg(Color::DarkGray)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(vec![Line::from("0"), Line::from(label(top))])
                .style(Style::default().fg(Color::DarkGray)),
        );
    frame.render_widget(chart, area);
}

fn protocol_colour(name: &str) -> Color {
    match name {
        "TCP" => Color::Green,
        "UDP" => Color::Blue,
        "ICMP" => Color::Yellow,
        _ => Color::Magenta,
    }
}

fn draw_mix(frame: &mut Frame<'_>, area: Rect, r: &Rates) {
    let rows = [
        ("TCP", r.tcp_pps),
        ("UDP", r.udp_pps),
        ("ICMP", r.icmp_pps),
        ("other", r.other_pps + r.non_ip_pps + r.malformed_pps),
    ];
    let total: f64 = rows.iter().map(|(_, v)| v).sum();
    let bar_room = f64::from(area.width.saturating_sub(26));
    let mut lines: Vec<Line<'_>> = rows
        .iter()
        .map(|(name, pps)| {
            let share = if total > 0.0 { pps / total } else { 0.0 };
            let bar = "#".repeat((share * bar_room).round() as usize);
            Line::from(vec![
                Span::styled(
                    format!("{name:<6}"),
                    Style::default().fg(protocol_colour(name)),
                ),
                Span::raw(format!("{:>8} pps {:>3.0}% ", rate(*pps), share * 100.0)),
                Span::styled(bar, Style::default().fg(protocol_colour(name))),
            ])
        })
        .collect();
    lines.push(Line::from(format!("SYN/s {:>8}", rate(r.syn_per_sec))));
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Protocol mix "),
        ),
        area,
    );
}

fn draw_talkers(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let header = ["Source", "pps", "bps", "SYN/s"].map(|h| {
        let sorted = matches!(
            (h, d.sort),
            ("pps", SortKey::Pps) | ("bps", SortKey::Bps) | ("SYN/s", SortKey::Syn)
        );
        let text = if sorted {
            format!("{h} v")
        } else {
            h.to_owned()
        };
        Cell::from(text).style(Style::default().add_modifier(Modifier::BOLD))
    });
    let rows: Vec<Row<'_>> = d
        .sorted_top()
        .iter()
        .map(|s| {
            let style = if d
                .active
                .keys()
                .any(|(_, source)| *source == AlertSource::Ip(s.ip))
            {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            };
            Row::new(vec![
                Cell::from(s.ip.to_string()),
                Cell::from(rate(s.pps)),
                Cell::from(bitrate(s.bits_per_sec)),
                Cell::from(rate(s.syn_per_sec)),
            ])
            .style(style)
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(16),
            Constraint::Length(10),
            Constraint::Length(14),
            Constraint::Length(8),
        ],
    )
    .header(Row::new(header))
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" Top talkers (sort: {}) ", d.sort.as_str())),
    );
    frame.render_widget(table, area);
}

fn draw_events(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let mut lines: Vec<Line<'_>> = d
        .active
        .values()
        .map(|l| Line::styled(format!("ACTIVE {}", l.text), severity_style(l.severity)))
        .collect();
    lines.extend(d.recent.iter().map(|l| {
        let style = match l.severity {
            Some(s) => severity_style(Some(s)),
            None if l.text.contains("ENDED") => severity_style(None),
            None => Style::default().fg(Color::DarkGray),
        };
        Line::styled(l.text.clone(), style)
    }));
    let title = format!(" Alerts: {} active ", d.active.len());
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let t = &d.totals;
    let text = format!(
        "total {} packets {} bytes | tcp {} udp {} icmp {} | q quit  p pause  s sort  ? help",
        thousands(t.total.packets),
        thousands(t.total.bytes),
        thousands(t.tcp.packets),
        thousands(t.udp.packets),
        thousands(t.icmp.packets),
    );
    frame.render_widget(
        Paragraph::new(text).style(Style::default().fg(Color::DarkGray)),
        area,
    );
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let lines = vec![
        Line::from("q, Esc, Ctrl-C  quit (final totals are printed)"),
        Line::from("p, space        pause the display (counting goes on)"),
        Line::from("s               sort top talkers by pps, bps, SYN/s"),
        Line::from("?               show or hide this help"),
    ];
    let width = 56.min(area.width);
    let height = 6.min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .alignment(Alignment::Left)
            .block(Block::default().borders(Borders::ALL).title(" Keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::model::alert::{Alert, Target, Unit};

    fn source(ip: &str, pps: f64, bits: f64, syn: f64) -> SourceRate {
        SourceRate {
            ip: ip.parse().unwrap(),
            pps,
            bytes_per_sec: bits / 8.0,
            bits_per_sec: bits,
            syn_per_sec: syn,
            udp_pps: 0.0,
            icmp_pps: 0.0,
            packets: 0,
            bytes: 0,
        }
    }

    fn dashboard() -> Dashboard {
        let mut d = Dashboard {
            description: "xdp (native mode) on veth0".into(),
            backend: "xdp".into(),
            iface: "veth0".into(),
            filter: Some("udp".into()),
            ..Default::default()
        };
        let mut totals = GlobalCounters::default();
        totals.total.packets = 1_234_567;
        let stats = IntervalStats {
            seconds: 1.0,
            totals,
            rates: Rates {
                pps: 1_500.0,
                tcp_pps: 1_000.0,
                udp_pps: 500.0,
                bits_per_sec: 8_000_000.0,
                ..Default::default()
            },
            top_sources: vec![
                source("10.0.0.1", 1_000.0, 1_000.0, 900.0),
                source("10.0.0.2", 500.0, 5_000_000.0, 0.0),
            ],
            capture_drops: None,
            dropped_sources: Vec::new(),
        };
        d.interval(&stats, Duration::from_secs(3));
        d
    }

    fn render_text(d: &Dashboard, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, d)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    #[test]
    fn panels_show_backend_rates_talkers_and_totals() {
        let text = render_text(&dashboard(), 120, 40);
        for expected in [
            "backend xdp on veth0",
            "filter: udp",
            "Packets/s now 1,500",
            "Bits/s now 8.0 Mbit/s",
            "Protocol mix",
            "TCP      1,000 pps  67%",
            "Top talkers (sort: pps)",
            "10.0.0.1",
            "Alerts: 0 active",
            "total 1,234,567 packets",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let first = text.find("10.0.0.1").unwrap();
        assert!(first < text.find("10.0.0.2").unwrap(), "by pps");
    }

    #[test]
    fn the_header_shows_what_pcap_lost() {
        let mut d = dashboard();
        assert!(!render_text(&d, 160, 40).contains("lost"), "xdp loses none");
        d.backend = "pcap".into();
        d.capture_drops = Some(CaptureDrops {
            dropped: 12_345,
            if_dropped: 6,
        });
        let text = render_text(&d, 160, 40);
        let header = text.lines().next().unwrap();
        assert!(
            header.contains("pcap lost 12,351 (buffer 12,345, interface 6)  up 3s"),
            "{header}"
        );
    }

    #[test]
    fn sort_cycles_and_reorders_talkers() {
        let mut d = dashboard();
        d.sort = d.sort.next();
        assert_eq!(d.sort, SortKey::Bps);
        let text = render_text(&d, 120, 40);
        assert!(text.contains("sort: bps"));
        assert!(text.find("10.0.0.2").unwrap() < text.find("10.0.0.1").unwrap());
        d.sort = d.sort.next();
        assert_eq!(d.sorted_top()[0].ip.to_string(), "10.0.0.1");
        assert_eq!(d.sort.next(), SortKey::Pps);
    }

    #[test]
    fn alerts_are_active_until_they_end_and_pause_shows() {
        let mut d = dashboard();
        let alert = Alert {
            kind: AlertKind::SynFlood,
            severity: Severity::High,
            source: AlertSource::Ip("10.0.0.1".parse().unwrap()),
            target: Target::Interface("veth0".into()),
            value: 900.0,
            threshold: 100.0,
            unit: Unit::SynPerSec,
            started_at: SystemTime::now(),
            message: "SYN rate".into(),
            flow: None,
            connection: None,
        };
        d.alerts(&[AlertEvent::Alert(alert)]);
        d.paused = true;
        let text = render_text(&d, 120, 40);
        assert!(text.contains("Alerts: 1 active"), "{text}");
        assert!(text.contains("ACTIVE"));
        assert!(text.contains("syn_flood from 10.0.0.1"));
        assert!(text.contains("PAUSED"));
    }

    #[test]
    fn tiny_and_odd_sizes_never_panic() {
        let mut d = dashboard();
        d.help = true;
        for (w, h) in [
            (1, 1),
            (0, 0),
            (10, 3),
            (59, 15),
            (60, 16),
            (61, 17),
            (200, 60),
        ] {
            let text = render_text(&d, w, h);
            if w < MIN_WIDTH || h < MIN_HEIGHT {
                assert!(w < 10 || h < 3 || text.contains("too small"), "{w}x{h}");
            }
        }
        assert!(render_text(&d, 80, 24).contains("Keys"));
    }
}
