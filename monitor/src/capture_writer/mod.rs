//! Triggered capture, the files: the task that writes captures. It opens a pcap file
//! per `CaptureStart`, appends the packets of that capture as the backend delivers
//! them, and closes the file at its packet count or deadline (or at shutdown),
//! reporting each as a `CaptureDone`. Disk errors end that capture, with the reason,
//! and nothing else.

use std::{
    collections::HashMap,
    fs::File,
    io::BufWriter,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use log::warn;
use pcap_file::{
    DataLink,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};
use tokio::{
    sync::mpsc::{Receiver, UnboundedReceiver, UnboundedSender},
    task::JoinHandle,
    time::interval,
};

use crate::model::capture::{CaptureDone, CaptureStart, CapturedPacket};

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

struct OpenCapture {
    start: CaptureStart,
    writer: PcapWriter<BufWriter<File>>,
    packets: u64,
    bytes: u64,
}

fn open(start: &CaptureStart) -> Result<PcapWriter<BufWriter<File>>, String> {
    if let Some(dir) = start.path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create capture directory {}: {e}", dir.display()))?;
    }
    let file = File::create(&start.path)
        .map_err(|e| format!("cannot create {}: {e}", start.path.display()))?;
    let header = PcapHeader {
        snaplen: start.snaplen,
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    PcapWriter::with_header(BufWriter::new(file), header)
        .map_err(|e| format!("cannot write to {}: {e}", start.path.display()))
}

/// Closes a capture: flushes the file, then keeps the directory under its limit
/// (sparing the files of the captures still open). A capture that got no packet (the
/// traffic had stopped by the time it was armed) leaves no empty file behind.
fn close(
    capture: OpenCapture,
    error: Option<String>,
    dir: &Path,
    max_disk: u64,
    still_open: &HashMap<u32, OpenCapture>,
) -> CaptureDone {
    let flushed = capture.writer.into_writer().into_inner().map_err(|e| {
        format!(
            "cannot finish {}: {}",
            capture.start.path.display(),
            e.error()
        )
    });
    let mut error = error.or(flushed.err());
    if error.is_none() && capture.packets == 0 {
        let _ = std::fs::remove_file(&capture.start.path);
        error = Some("no packet arrived before the capture ended (the traffic had stopped)".into());
    }
    let open: Vec<&Path> = still_open
        .values()
        .map(|c| c.start.path.as_path())
        .collect();
    if let Err(e) = enforce_disk_limit(dir, max_disk, &open) {
        warn!(
            "cannot keep the capture directory {} under its size limit: {e}",
            dir.display()
        );
    }
    CaptureDone::of(&capture.start, capture.packets, capture.bytes, error)
}

/// Starts the writer. It ends when `starts` is closed, closing what is still open.
pub fn spawn(
    mut starts: UnboundedReceiver<CaptureStart>,
    mut packets: Receiver<CapturedPacket>,
    finished: UnboundedSender<CaptureDone>,
    dir: PathBuf,
    max_disk: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut open_captures: HashMap<u32, OpenCapture> = HashMap::new();
        let mut deadlines = interval(DEADLINE_CHECK);
        loop {
            tokio::select! {
                // Starts first: a capture is known before its packets are read.
                biased;
                start = starts.recv() => {
                    let Some(start) = start else { break };
                    match open(&start) {
                        Ok(writer) => {
                            open_captures.insert(start.id, OpenCapture { start, writer, packets: 0, bytes: 0 });
                        }
                        Err(error) => {
                            let _ = finished.send(CaptureDone::of(&start, 0, 0, Some(error)));
                        }
                    }
                }
                Some(packet) = packets.recv() => {
                    let Some(capture) = open_captures.get_mut(&packet.capture_id) else {
                        continue; // a capture that already ended
                    };
                    let timestamp = packet.timestamp.duration_since(UNIX_EPOCH).unwrap_or_default();
                    let written = capture
                        .writer
                        .write_packet(&PcapPacket::new(timestamp, packet.orig_len, &packet.data));
                    let error = match written {
                        Ok(_) => {
                            capture.packets += 1;
                            capture.bytes += packet.data.len() as u64;
                            if capture.packets < u64::from(capture.start.max_packets) {
                                continue;
                            }
                            None
                        }
                        Err(e) => Some(format!("cannot write to {}: {e}", capture.start.path.display())),
                    };
                    if let Some(capture) = open_captures.remove(&packet.capture_id) {
                        let _ = finished.send(close(capture, error, &dir, max_disk, &open_captures));
                    }
                }
                _ = deadlines.tick() => {
                    let now = Instant::now();
                    let expired: Vec<u32> = open_captures
                        .iter()
                        .filter(|(_, c)| c.start.deadline <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in expired {
                        if let Some(capture) = open_captures.remove(&id) {
                            let _ = finished.send(close(capture, None, &dir, max_disk, &open_captures));
                        }
                    }
                }
            }
        }
        let closing: Vec<OpenCapture> = open_captures.drain().map(|(_, c)| c).collect();
        for capture in closing {
            let _ = finished.send(close(capture, None, &dir, max_disk, &open_captures));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_files_go_first() {
        let dir = std::env::temp_dir().join(format!("monitor-disk-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, name) in ["a.pcap", "b.pcap", "c.pcap"].iter().enumerate() {
            std::fs::write(dir.join(name), vec![0u8; 100]).unwrap();
            let at = SystemTime::now() - Duration::from_secs(100 - i as u64 * 10);
            File::options()
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
