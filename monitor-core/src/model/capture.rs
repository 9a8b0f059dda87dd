//! Captures as data: a packet the backend captured, whose packets a capture follows,
//! and a capture to begin or that ended.

use std::{
    net::IpAddr,
    path::PathBuf,
    time::{Instant, SystemTime},
};

use serde::Serialize;

use super::alert::AlertKind;

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
