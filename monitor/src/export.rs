//! Stats exports (`--export stats.csv`, predecessor 001's "data export"): one row per
//! polling interval, appended to a CSV file (a header first, when the file is new or
//! empty) or to a JSON-lines file (`.json`, `.jsonl`), one flat object a line with the
//! same names as the CSV columns. A restarted monitor appends to what is there.
//!
//! Columns (docs/metrics.md documents them): `time`, `iface`, `backend`, `interval_secs`;
//! the cumulative totals of the `stats` JSON line (`packets` ... `fragments`); the
//! interval's rates (`pps` ... `fragments_per_sec`); the interval's top source
//! (`top_source`, `top_source_pps`, `top_source_bits_per_sec`; empty when none); the
//! packets the capture lost (`capture_dropped`, `capture_if_dropped`: pcap backend
//! only, cumulative; empty for a backend that loses none).

use std::{
    fs::{File, OpenOptions},
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use log::{error, warn};
use monitor_common::GlobalCounters;
use serde::Serialize;

use crate::{
    model::{alert::AlertEvent, capture::CaptureDone, format::now_rfc3339},
    report::{Reporter, RunInfo, json::Totals},
    stats::{IntervalStats, Rates},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

impl ExportFormat {
    /// From the file's extension: `.csv`, or `.json`/`.jsonl` (any case).
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Self::Csv),
            Some("json" | "jsonl") => Ok(Self::JsonLines),
            _ => bail!(
                "export file {}: the name must end in .csv, .json or .jsonl (it picks the format)",
                path.display()
            ),
        }
    }
}

/// One exported row. Field order is column order.
#[derive(Debug, PartialEq, Serialize)]
pub struct Row {
    pub time: String,
    pub iface: String,
    pub backend: String,
    pub interval_secs: f64,
    #[serde(flatten)]
    pub totals: Totals,
    #[serde(flatten)]
    pub rates: Rates,
    pub top_source: Option<String>,
    pub top_source_pps: Option<f64>,
    pub top_source_bits_per_sec: Option<f64>,
    /// libpcap's drop counters (`ps_drop`, `ps_ifdrop`), cumulative; `None` for a
    /// backend that loses no packets.
    pub capture_dropped: Option<u64>,
    pub capture_if_dropped: Option<u64>,
}

impl Row {
    pub fn new(time: String, run: &RunInfo, stats: &IntervalStats) -> Self {
        let top = stats.top_sources.first();
        Self {
            time,
            iface: run.iface.clone(),
            backend: run.backend.to_owned(),
            interval_secs: (stats.seconds * 1000.0).round() / 1000.0,
            totals: Totals::from(&stats.totals),
            rates: stats.rates.clone(),
            top_source: top.map(|s| s.ip.to_string()),
            top_source_pps: top.map(|s| s.pps),
            top_source_bits_per_sec: top.map(|s| s.bits_per_sec),
            capture_dropped: stats.capture_drops.map(|d| d.dropped),
            capture_if_dropped: stats.capture_drops.map(|d| d.if_dropped),
        }
    }
}

/// The row as one flat JSON object, fields in column order (the JSON line; the CSV
/// columns are its keys).
fn flat(row: &Row) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::to_value(row)? {
        serde_json::Value::Object(fields) => Ok(fields),
        _ => bail!("a stats row is not an object"),
    }
}

/// The CSV header line, without its newline.
pub fn csv_header() -> String {
    let row = Row::new(
        String::new(),
        &RunInfo {
            iface: String::new(),
            backend: "",
            description: String::new(),
            interval: Duration::ZERO,
            mitigation: crate::config::MitigateMode::Off,
        },
        &IntervalStats {
            seconds: 0.0,
            totals: GlobalCounters::default(),
            rates: Rates::default(),
            top_sources: Vec::new(),
            capture_drops: None,
            dropped_sources: Vec::new(),
        },
    );
    flat(&row)
        .map(|fields| fields.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// One row as its line in `format`, newline included.
pub fn encode(row: &Row, format: ExportFormat) -> Result<Vec<u8>> {
    let fields = flat(row)?;
    match format {
        ExportFormat::Csv => {
            // The csv crate quotes what needs it (an interface name is free text).
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            writer.write_record(fields.values().map(|value| match value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            }))?;
            Ok(writer.into_inner().context("failed to encode a CSV row")?)
        }
        ExportFormat::JsonLines => {
            let mut line = serde_json::to_vec(&fields)?;
            line.push(b'\n');
            Ok(line)
        }
    }
}

/// The open export file.
pub struct Exporter {
    path: PathBuf,
    format: ExportFormat,
    file: File,
    /// Set after a write fails, so that a full disk is one error line, not one per
    /// interval.
    failed: bool,
}

impl Exporter {
    /// Opens (creates or appends to) the file now, so that a wrong path stops the
    /// monitor before it attaches; writes the CSV header into a new or empty file.
    pub fn open(path: &Path) -> Result<Self> {
        let format = ExportFormat::of(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("failed to open the export file {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("failed to read the export file {}", path.display()))?
            .len();
        if format == ExportFormat::Csv {
            let header = csv_header();
            if len == 0 {
                file.write_all(format!("{header}\n").as_bytes())
                    .with_context(|| {
                        format!("failed to write to the export file {}", path.display())
                    })?;
            } else if first_line(path).as_deref() != Some(header.as_str()) {
                warn!(
                    "export file {} starts with other columns than this monitor writes; appending anyway",
                    path.display()
                );
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            format,
            file,
            failed: false,
        })
    }

    pub fn write(&mut self, row: &Row) {
        // One write per row, in append mode: a crash leaves whole rows behind.
        let written = encode(row, self.format).and_then(|line| Ok(self.file.write_all(&line)?));
        match written {
            Ok(()) => self.failed = false,
            Err(err) if !self.failed => {
                self.failed = true;
                error!(
                    "failed to write to the export file {}: {err:#}; monitoring goes on",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
    }
}

fn first_line(path: &Path) -> Option<String> {
    let mut line = String::new();
    BufReader::new(File::open(path).ok()?)
        .read_line(&mut line)
        .ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_owned())
}

impl Reporter for Exporter {
    fn start(&mut self, _run: &RunInfo) {}

    fn interval(&mut self, run: &RunInfo, stats: &IntervalStats) {
        self.write(&Row::new(now_rfc3339(), run, stats));
    }

    fn alerts(&mut self, _run: &RunInfo, _events: &[AlertEvent]) {}

    fn capture(&mut self, _run: &RunInfo, _done: &CaptureDone) {}

    fn finish(&mut self, _run: &RunInfo, _totals: &GlobalCounters, _elapsed: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SourceRate;

    fn sample() -> (RunInfo, IntervalStats) {
        let run = RunInfo {
            iface: "eth0".into(),
            backend: "xdp",
            description: "xdp (native mode) on eth0".into(),
            interval: Duration::from_secs(1),
            mitigation: crate::config::MitigateMode::Off,
        };
        let mut totals = GlobalCounters::default();
        totals.total.packets = 120;
        totals.total.bytes = 7_680;
        totals.udp.packets = 120;
        let stats = IntervalStats {
            seconds: 1.0004,
            totals,
            rates: Rates {
                pps: 120.0,
                bits_per_sec: 61_440.0,
                ..Rates::default()
            },
            top_sources: vec![SourceRate {
                ip: "192.0.2.9".parse().unwrap(),
                pps: 120.0,
                bytes_per_sec: 7_680.0,
                bits_per_sec: 61_440.0,
                syn_per_sec: 0.0,
                udp_pps: 120.0,
                icmp_pps: 0.0,
                packets: 120,
                bytes: 7_680,
            }],
            capture_drops: None,
            dropped_sources: Vec::new(),
        };
        (run, stats)
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("monitor-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            ExportFormat::of(Path::new("a/stats.csv")).unwrap(),
            ExportFormat::Csv
        );
        assert_eq!(
            ExportFormat::of(Path::new("s.JSONL")).unwrap(),
            ExportFormat::JsonLines
        );
        assert_eq!(
            ExportFormat::of(Path::new("s.json")).unwrap(),
            ExportFormat::JsonLines
        );
        let err = ExportFormat::of(Path::new("stats.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stats.txt") && err.contains(".csv, .json or .jsonl"),
            "{err}"
        );
    }

    #[test]
    fn csv_header_names_the_documented_columns_in_order() {
        let header = csv_header();
        assert!(
            header.starts_with("time,iface,backend,interval_secs,packets,bytes,tcp,udp,icmp,"),
            "{header}"
        );
        assert!(
            header.contains(",fragments,dropped,dropped_bytes,pps,bytes_per_sec,bits_per_sec,"),
            "{header}"
        );
        assert!(
            header
                .ends_with(",fragments_per_sec,dropped_pps,dropped_bits_per_sec,top_source,top_source_pps,top_source_bits_per_sec,capture_dropped,capture_if_dropped"),
            "{header}"
        );
        assert_eq!(header.split(',').count(), 4 + 25 + 18 + 3 + 2);
    }

    #[test]
    fn csv_appends_and_writes_the_header_once() {
        let path = temp("stats.csv");
        let (run, stats) = sample();
        let row = Row::new("2026-11-22T06:00:00.000Z".into(), &run, &stats);
        Exporter::open(&path).unwrap().write(&row);
        // A restarted monitor appends, without a second header.
        let mut again = Exporter::open(&path).unwrap();
        again.write(&row);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], csv_header());
        assert_eq!(lines[1], lines[2]);
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let headers = reader.headers().unwrap().clone();
        let record = reader.records().next().unwrap().unwrap();
        let field = |name: &str| &record[headers.iter().position(|h| h == name).unwrap()];
        assert_eq!(field("packets"), "120");
        assert_eq!(field("udp"), "120");
        assert_eq!(field("pps"), "120.0");
        assert_eq!(field("interval_secs"), "1.0");
        assert_eq!(field("top_source"), "192.0.2.9");
        assert_eq!(field("iface"), "eth0");
    }

    #[test]
    fn json_lines_are_flat_objects_with_the_csv_names() {
        let path = temp("stats.jsonl");
        let (run, mut stats) = sample();
        let mut exporter = Exporter::open(&path).unwrap();
        exporter.write(&Row::new("t1".into(), &run, &stats));
        stats.top_sources.clear();
        exporter.write(&Row::new("t2".into(), &run, &stats));
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["packets"], 120);
        assert_eq!(rows[0]["top_source"], "192.0.2.9");
        assert!(rows[1]["top_source"].is_null());
        let keys: Vec<&str> = rows[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.join(","), csv_header());
    }

    #[test]
    fn capture_drops_are_exported_where_the_backend_can_lose_packets() {
        let (mut run, mut stats) = sample();
        let xdp = Row::new("t".into(), &run, &stats);
        let csv = String::from_utf8(encode(&xdp, ExportFormat::Csv).unwrap()).unwrap();
        assert!(csv.ends_with(",192.0.2.9,120.0,61440.0,,\n"), "{csv}");
        run.backend = "pcap";
        stats.capture_drops = Some(crate::model::snapshot::CaptureDrops {
            dropped: 1_234,
            if_dropped: 5,
        });
        let pcap = Row::new("t".into(), &run, &stats);
        let csv = String::from_utf8(encode(&pcap, ExportFormat::Csv).unwrap()).unwrap();
        assert!(csv.ends_with(",192.0.2.9,120.0,61440.0,1234,5\n"), "{csv}");
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&pcap, ExportFormat::JsonLines).unwrap()).unwrap();
        assert_eq!(
            (&json["capture_dropped"], &json["capture_if_dropped"]),
            (&1_234.into(), &5.into())
        );
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&xdp, ExportFormat::JsonLines).unwrap()).unwrap();
        assert!(json["capture_dropped"].is_null(), "{json}");
    }

    #[test]
    fn an_unwritable_path_is_one_line_naming_it() {
        let err = Exporter::open(Path::new("/nonexistent-dir/stats.csv"))
            .err()
            .unwrap();
        let shown = format!("{err:#}");
        assert!(
            shown.starts_with("failed to open the export file /nonexistent-dir/stats.csv: "),
            "{shown}"
        );
        assert!(!shown.contains('\n'));
    }
}
