//! Triggered capture: when an alert is raised, the offending source's packets (every
//! packet, for a distributed flood) are written to a pcap file, up to a packet count or
//! a time limit. The backend supplies the packets (on XDP, copied by the kernel at the
//! hook); `CapturePlanner` decides what to capture and `writer` writes the files.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;

use crate::{
    alert::{Alert, AlertKind, AlertSource},
    config::PcapConfig,
};

pub mod writer;

/// Captures the kernel can follow at once (its CAPTURE_TARGETS table).
pub const MAX_ACTIVE_CAPTURES: usize = monitor_common::limits::MAX_CAPTURE_TARGETS as usize;

/// One packet as the backend captured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    pub capture_id: u32,
    pub timestamp: SystemTime,
    /// Length on the wire; `data` holds its first snap-length bytes.
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Whose packets: one source, or every source (`None`, for a distributed flood).
pub type CaptureTarget = Option<IpAddr>;

/// A capture to begin.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureStart {
    pub id: u32,
    pub target: CaptureTarget,
    pub kind: AlertKind,
    pub path: PathBuf,
    pub max_packets: u32,
    pub deadline: Instant,
    pub snaplen: u32,
}

/// A capture that ended: written whole, cut short, or never started.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaptureDone {
    #[serde(skip)]
    pub id: u32,
    pub kind: AlertKind,
    pub source: String,
    #[serde(skip)]
    pub target: CaptureTarget,
    pub path: PathBuf,
    pub packets: u64,
    pub bytes: u64,
    /// Why the file is missing or short (an unwritable directory, a full disk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaptureDone {
    /// How the capture `start` ended.
    pub fn of(start: &CaptureStart, packets: u64, bytes: u64, error: Option<String>) -> Self {
        Self {
            id: start.id,
            kind: start.kind,
            source: start
                .target
                .map_or_else(|| "many".to_owned(), |ip| ip.to_string()),
            target: start.target,
            path: start.path.clone(),
            packets,
            bytes,
            error,
        }
    }
}

/// `<kind>_<source>_<UTC time>.pcap`; an IPv6 source's colons become dashes so the
/// name is valid on every file system.
pub fn file_name(kind: AlertKind, target: CaptureTarget, at: SystemTime) -> String {
    let source = match target {
        Some(ip) => ip.to_string().replace(':', "-"),
        None => "many".to_owned(),
    };
    // 2026-11-22T04:55:12.345Z -> 20261122T045512Z
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{}_{source}_{stamp}.pcap", kind.as_str())
}

/// Decides which alerts start a capture: one capture at a time per source, a bounded
/// number at once, none while the feature is off.
#[derive(Debug)]
pub struct CapturePlanner {
    config: PcapConfig,
    next_id: u32,
    active: HashMap<CaptureTarget, u32>,
}

impl CapturePlanner {
    pub fn new(config: &PcapConfig) -> Self {
        Self {
            config: config.clone(),
            next_id: 1,
            active: HashMap::new(),
        }
    }

    /// The capture to start for a new alert, if any.
    pub fn request(&mut self, alert: &Alert, now: Instant) -> Option<CaptureStart> {
        if !self.config.enabled {
            return None;
        }
        let target = match alert.source {
            AlertSource::Ip(ip) => Some(ip),
            AlertSource::Many => None,
            // A local process has no packets of its own to follow at the hook.
            AlertSource::Process(_) => return None,
        };
        if self.active.contains_key(&target) || self.active.len() >= MAX_ACTIVE_CAPTURES {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.active.insert(target, id);
        Some(CaptureStart {
            id,
            target,
            kind: alert.kind,
            path: self
                .config
                .dir
                .join(file_name(alert.kind, target, alert.started_at)),
            max_packets: self.config.max_packets.get(),
            deadline: now + self.config.max_duration,
            snaplen: self.config.snaplen.0,
        })
    }

    /// Frees the target for another capture.
    pub fn finished(&mut self, done: &CaptureDone) {
        if self.active.get(&done.target) == Some(&done.id) {
            self.active.remove(&done.target);
        }
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }
}

/// Deletes the oldest `.pcap` files in `dir` until they total at most `max_bytes`,
/// sparing the files still being written (`open`); returns the files deleted.
pub fn enforce_disk_limit(
    dir: &Path,
    max_bytes: u64,
    open: &[&Path],
) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pcap") {
            let meta = entry.metadata()?;
            files.push((meta.modified()?, meta.len(), path));
        }
    }
    files.sort();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    let mut deleted = Vec::new();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if open.contains(&path.as_path()) {
            continue;
        }
        std::fs::remove_file(&path)?;
        total -= len;
        deleted.push(path);
    }
    Ok(deleted)
}

/// How long the writer waits between deadline checks.
pub const DEADLINE_CHECK: Duration = Duration::from_millis(100);

/// Triggered capture while the monitor runs: the planner, the writer task and the
/// channels between them and the polling loop.
pub struct Captures {
    planner: CapturePlanner,
    starts: tokio::sync::mpsc::UnboundedSender<CaptureStart>,
    finished: tokio::sync::mpsc::UnboundedReceiver<CaptureDone>,
    writer: tokio::task::JoinHandle<()>,
}

impl Captures {
    /// `None` when captures are off or the backend cannot capture.
    pub fn start(config: &PcapConfig, backend: &mut dyn crate::backend::Backend) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let packets = backend.captured_packets()?;
        let (starts, starts_rx) = tokio::sync::mpsc::unbounded_channel();
        let (finished_tx, finished) = tokio::sync::mpsc::unbounded_channel();
        let writer = writer::spawn(
            starts_rx,
            packets,
            finished_tx,
            config.dir.clone(),
            config.max_disk_bytes.get(),
        );
        Some(Self {
            planner: CapturePlanner::new(config),
            starts,
            finished,
            writer,
        })
    }

    /// Starts a capture for each new alert whose source is not already being captured.
    pub fn on_alerts(
        &mut self,
        events: &[crate::alert::AlertEvent],
        backend: &mut dyn crate::backend::Backend,
        now: Instant,
    ) {
        for event in events {
            let crate::alert::AlertEvent::Alert(alert) = event else {
                continue;
            };
            let Some(start) = self.planner.request(alert, now) else {
                continue;
            };
            // The writer learns of the capture before the kernel starts sending its
            // packets, so none arrives for a capture it does not know yet.
            let _ = self.starts.send(start.clone());
            if let Err(err) = backend.arm_capture(start.id, start.target) {
                log::warn!("cannot capture {}: {err:#}", alert.source);
                self.planner
                    .finished(&CaptureDone::of(&start, 0, 0, Some(format!("{err:#}"))));
                continue;
            }
            log::info!("capturing {} to {}", alert.source, start.path.display());
        }
    }

    /// Captures that ended since the last call; their sources are disarmed.
    pub fn finished(&mut self, backend: &mut dyn crate::backend::Backend) -> Vec<CaptureDone> {
        let mut done = Vec::new();
        while let Ok(capture) = self.finished.try_recv() {
            self.retire(&capture, backend);
            done.push(capture);
        }
        done
    }

    fn retire(&mut self, capture: &CaptureDone, backend: &mut dyn crate::backend::Backend) {
        if let Err(err) = backend.disarm_capture(capture.target) {
            log::warn!("cannot stop capturing {}: {err:#}", capture.source);
        }
        self.planner.finished(capture);
    }

    /// Closes the captures still open (their files stay valid) and reports them.
    pub async fn shutdown(mut self, backend: &mut dyn crate::backend::Backend) -> Vec<CaptureDone> {
        // Closing the start channel makes the writer close what is open, then end.
        let (closed, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.starts, closed));
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.writer).await;
        self.finished(backend)
    }
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU32, NonZeroU64};

    use super::*;
    use crate::alert::{Severity, Unit};

    fn alert(source: AlertSource) -> Alert {
        Alert {
            kind: AlertKind::SynFlood,
            severity: Severity::High,
            source,
            target: "eth0".into(),
            value: 1.0,
            threshold: 1.0,
            unit: Unit::SynPerSec,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            message: String::new(),
            flow: None,
            connection: None,
        }
    }

    #[test]
    fn file_names_say_kind_source_and_time() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(
            file_name(AlertKind::SynFlood, Some("10.0.0.2".parse().unwrap()), at),
            "syn_flood_10.0.0.2_20261118T110640Z.pcap"
        );
        assert_eq!(
            file_name(
                AlertKind::UdpFlood,
                Some("2001:db8::1".parse().unwrap()),
                at
            ),
            "udp_flood_2001-db8--1_20261118T110640Z.pcap"
        );
        assert_eq!(
            file_name(AlertKind::PpsBurst, None, at),
            "pps_burst_many_20261118T110640Z.pcap"
        );
    }

    #[test]
    fn one_capture_at_a_time_per_source() {
        let mut planner = CapturePlanner::new(&PcapConfig::default());
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let first = planner.request(&alert(AlertSource::Ip(ip)), now).unwrap();
        assert_eq!(first.target, Some(ip));
        assert_eq!(first.max_packets, 10_000);
        assert_eq!(first.deadline, now + Duration::from_secs(30));
        assert!(first.path.starts_with("captures"));
        assert!(planner.request(&alert(AlertSource::Ip(ip)), now).is_none());
        let many = planner.request(&alert(AlertSource::Many), now).unwrap();
        assert_eq!(many.target, None);
        assert_ne!(many.id, first.id);
        let done = CaptureDone {
            id: first.id,
            kind: first.kind,
            source: ip.to_string(),
            target: first.target,
            path: first.path.clone(),
            packets: 3,
            bytes: 180,
            error: None,
        };
        planner.finished(&done);
        assert!(planner.request(&alert(AlertSource::Ip(ip)), now).is_some());
        assert_eq!(planner.active(), 2);
    }

    #[test]
    fn nothing_is_captured_when_off() {
        let config = PcapConfig {
            enabled: false,
            max_packets: NonZeroU32::new(5).unwrap(),
            max_disk_bytes: NonZeroU64::new(5).unwrap(),
            ..PcapConfig::default()
        };
        let mut planner = CapturePlanner::new(&config);
        assert!(
            planner
                .request(&alert(AlertSource::Many), Instant::now())
                .is_none()
        );
    }

    #[test]
    fn the_oldest_files_go_first() {
        let dir = std::env::temp_dir().join(format!("monitor-disk-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, name) in ["a.pcap", "b.pcap", "c.pcap"].iter().enumerate() {
            std::fs::write(dir.join(name), vec![0u8; 100]).unwrap();
            let at = SystemTime::now() - Duration::from_secs(100 - i as u64 * 10);
            std::fs::File::options()
                .write(true)
                .open(dir.join(name))
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        std::fs::write(dir.join("notes.txt"), vec![0u8; 1_000]).unwrap();
        let deleted = enforce_disk_limit(&dir, 200, &[]).unwrap();
        assert_eq!(deleted, vec![dir.join("a.pcap")]);
        assert!(dir.join("b.pcap").exists() && dir.join("c.pcap").exists());
        // The oldest left is still being written: the next one goes instead.
        let open = dir.join("b.pcap");
        let deleted = enforce_disk_limit(&dir, 100, &[open.as_path()]).unwrap();
        assert_eq!(deleted, vec![dir.join("c.pcap")]);
        assert!(open.exists());
        assert!(
            dir.join("notes.txt").exists(),
            "only captures are counted and deleted"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
