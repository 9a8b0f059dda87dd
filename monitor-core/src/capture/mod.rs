//! Triggered capture, the decision: when an alert is raised, the offending source's
//! packets (every packet, for a distributed flood) are to be written to a pcap file, up
//! to a packet count or a time limit. [`CapturePlanner`] decides what to capture and
//! names the file; the backend supplies the packets (on XDP, copied by the kernel at
//! the hook), `monitor::capture_writer` writes the files and `monitor::run` arms the
//! backend.

use std::{
    collections::HashMap,
    time::{Instant, SystemTime},
};

use crate::{
    config::PcapConfig,
    model::{
        alert::{Alert, AlertKind, AlertSource},
        capture::{CaptureDone, CaptureStart, CaptureTarget},
    },
};

/// Captures the kernel can follow at once (its `CAPTURE_TARGETS` table).
pub const MAX_ACTIVE_CAPTURES: usize = monitor_common::limits::MAX_CAPTURE_TARGETS as usize;

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
        .filter(char::is_ascii_alphanumeric)
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

#[cfg(test)]
mod tests {
    use std::{
        net::IpAddr,
        num::{NonZeroU32, NonZeroU64},
        time::Duration,
    };

    use super::*;
    use crate::model::alert::{Severity, Target, Unit};

    fn alert(source: AlertSource) -> Alert {
        Alert {
            kind: AlertKind::SynFlood,
            severity: Severity::High,
            source,
            target: Target::Interface("eth0".into()),
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
}
