//! The libpcap backend (Npcap on Windows): for systems without XDP, or without the
//! rights to load BPF programs. A capture thread reads each packet the interface
//! receives and counts it with the XDP program's own rules (`software::Counters`), so
//! the snapshots, and every detector, are the same as on XDP. What it adds is a
//! buffer that can overflow: libpcap's drop counters go into every snapshot, and a
//! warning is logged when they grow.
//!
//! Direction: XDP sees only what arrives, so this backend asks libpcap for incoming
//! packets only (`Direction::In`). A second, filtered capture of the packets the
//! host sends counts its SYN-ACKs (what the XDP backend needs a TC program for).

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use log::{debug, warn};
use pcap::{Active, Capture, Direction, Linktype};

use super::{
    Backend, CAPTURE_QUEUE, PACKET_LOG_QUEUE,
    software::{Counters, CountingSetup, SnappedFrame},
};
use crate::{
    model::{
        capture::{CaptureTarget, CapturedPacket},
        packet::PacketRecord,
        snapshot::{CaptureDrops, Snapshot},
    },
    packets::RateCap,
};

/// Bytes of each packet libpcap copies: enough for every header the decoder reads
/// (`MAX_HEADER_OFFSET` plus a TCP header with options), whatever the capture snap
/// length; the packet's length on the wire still comes from the capture header.
const COUNTING_SNAPLEN: u32 = monitor_common::decode::MAX_HEADER_OFFSET as u32 + 128;
/// The kernel's capture buffer (libpcap's default is 2 MiB): room for a quarter
/// second of a 100k pps flood while the thread is descheduled.
const BUFFER_BYTES: i32 = 32 << 20;
/// How long a read waits for a packet before the thread looks at its stop flag.
const READ_TIMEOUT_MS: i32 = 100;
/// How long shutdown waits for the capture threads.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);
/// How often the thread reads libpcap's drop counters.
const STATS_EVERY: Duration = Duration::from_millis(250);
/// At most one drop warning this often, however hard the flood.
const WARN_EVERY: Duration = Duration::from_secs(5);
/// What the second capture keeps of the packets the host sends: TCP SYN-ACKs over
/// IPv4, and IPv6 TCP (libpcap's `tcp[]` reads IPv4 only; the decoder picks the
/// SYN-ACKs out).
const SENT_SYN_ACKS: &str =
    "(ip and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)) or (ip6 and tcp)";

const PRIVILEGE_HINT: &str = if cfg!(windows) {
    "install Npcap (https://npcap.com) and run as Administrator, or install Npcap \
     without its \"restrict to Administrators\" option"
} else if cfg!(target_os = "macos") {
    "run as root (sudo), or give your user read access to /dev/bpf*"
} else {
    "run as root (sudo), or grant the binary the capabilities: \
     sudo setcap cap_net_raw,cap_net_admin+ep <path to monitor>"
};

/// The `--bpf` filter libpcap refused: the user's to fix, so `auto` stops on it
/// instead of falling back to another backend.
#[derive(Debug, thiserror::Error)]
#[error("invalid --bpf filter `{filter}`")]
pub struct InvalidFilter {
    filter: String,
    #[source]
    source: pcap::Error,
}

/// What the pcap backend needs besides the interface.
#[derive(Clone, Debug)]
pub struct PcapSetup {
    pub counting: CountingSetup,
    /// A capture filter in libpcap's syntax (`--bpf`), applied to what is counted.
    pub filter: Option<String>,
    /// Bytes of each captured packet written to a triggered capture's file.
    pub capture_snaplen: u32,
    /// `--packets`: the packet log's lines per second of packet time; `None` when off.
    pub packet_log_rate: Option<u32>,
}

/// What the capture threads and the polling loop share.
struct Shared {
    counters: Mutex<Counters>,
    drops: Mutex<CaptureDrops>,
    stop: AtomicBool,
    /// Packets left out of the packet log: over its rate cap, or its queue full.
    packet_log_skipped: AtomicU64,
}

impl Shared {
    /// The counters; a capture thread that panicked leaves them as they were, which is
    /// still the best count there is.
    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct PcapBackend {
    iface: String,
    filter: Option<String>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Wake the threads' blocking reads at shutdown.
    breakers: Vec<pcap::BreakLoop>,
    /// Whether the sent SYN-ACKs are counted.
    sees_sent: bool,
    captured: Option<tokio::sync::mpsc::Receiver<CapturedPacket>>,
    packet_log: Option<tokio::sync::mpsc::Receiver<PacketRecord>>,
    /// The drops already warned about, and when.
    warned_drops: u64,
    last_warning: Option<Instant>,
}

/// Opens `iface` for a live capture: no promiscuous mode (XDP sees only what the
/// interface accepts), packets handed over as they come.
fn open_capture(iface: &str, snaplen: u32) -> Result<Capture<Active>> {
    let opened = Capture::from_device(iface)
        .and_then(|c| {
            c.promisc(false)
                .snaplen(snaplen as i32)
                .timeout(READ_TIMEOUT_MS)
                .immediate_mode(true)
                .buffer_size(BUFFER_BYTES)
                .open()
        })
        .map_err(|err| {
            let text = err.to_string();
            let denied = ["permission", "Operation not permitted", "access"]
                .iter()
                .any(|w| text.to_lowercase().contains(&w.to_lowercase()));
            if denied {
                anyhow::anyhow!(
                    "libpcap cannot open `{iface}` for capture ({text}): {PRIVILEGE_HINT}"
                )
            } else {
                anyhow::anyhow!("libpcap cannot open `{iface}` for capture: {text}")
            }
        })?;
    let link = opened.get_datalink();
    if link != Linktype::ETHERNET {
        bail!(
            "`{iface}` does not carry Ethernet frames (libpcap link type {}), which the \
             pcap backend decodes; choose an Ethernet interface",
            link.get_name().unwrap_or_else(|_| link.0.to_string())
        );
    }
    Ok(opened)
}

fn timestamp(header: &pcap::PacketHeader) -> SystemTime {
    let secs = u64::try_from(header.ts.tv_sec).unwrap_or(0);
    let micros = u64::try_from(header.ts.tv_usec).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
}

impl PcapBackend {
    /// Opens the captures on `iface` and starts counting.
    pub fn open(iface: &str, setup: &PcapSetup) -> Result<Self> {
        let capture_snaplen = setup.capture_snaplen;
        let mut incoming = open_capture(iface, COUNTING_SNAPLEN.max(capture_snaplen))?;
        if let Err(err) = incoming.direction(Direction::In) {
            // Windows' Npcap cannot choose; counting both ways would break parity
            // with XDP and double the host's own traffic, so say it loudly.
            warn!(
                "libpcap cannot capture incoming packets only on `{iface}` ({err}): packets \
                 the host sends are counted too"
            );
        }
        if let Some(filter) = &setup.filter {
            incoming
                .filter(filter, true)
                .map_err(|source| InvalidFilter {
                    filter: filter.clone(),
                    source,
                })?;
        }
        let sent = open_capture(iface, COUNTING_SNAPLEN)
            .and_then(|c| {
                c.direction(Direction::Out)
                    .context("libpcap cannot capture only the packets sent")?;
                Ok(c)
            })
            .and_then(|mut c| {
                c.filter(SENT_SYN_ACKS, true)
                    .context("the SYN-ACK filter was refused")?;
                Ok(c)
            });
        let shared = Arc::new(Shared {
            counters: Mutex::new(Counters::new(&setup.counting)),
            drops: Mutex::new(CaptureDrops::default()),
            stop: AtomicBool::new(false),
            packet_log_skipped: AtomicU64::new(0),
        });
        let (sender, receiver) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
        let (packet_log, packet_log_receiver) = match setup.packet_log_rate {
            Some(rate) => {
                let (records, receiver) = tokio::sync::mpsc::channel(PACKET_LOG_QUEUE);
                let feed = PacketLogFeed {
                    cap: RateCap::new(rate),
                    records,
                };
                (Some(feed), Some(receiver))
            }
            None => (None, None),
        };
        let mut threads = Vec::new();
        let mut breakers = vec![incoming.breakloop_handle()];
        {
            let (shared, iface) = (shared.clone(), iface.to_owned());
            threads.push(
                std::thread::Builder::new()
                    .name("pcap-in".into())
                    .spawn(move || {
                        let outputs = Outputs {
                            captured: sender,
                            capture_snaplen,
                            packet_log,
                        };
                        count_incoming(incoming, &shared, &iface, outputs);
                    })
                    .context("failed to start the capture thread")?,
            );
        }
        let sees_sent = match sent {
            Ok(mut sent) => {
                breakers.push(sent.breakloop_handle());
                let (shared, iface) = (shared.clone(), iface.to_owned());
                threads.push(
                    std::thread::Builder::new()
                        .name("pcap-out".into())
                        .spawn(move || count_sent(sent, &shared, &iface))
                        .context("failed to start the capture thread")?,
                );
                true
            }
            Err(err) => {
                warn!(
                    "SYN-ACKs sent are not counted, so the SYN:SYN-ACK ratio check is off: {err:#}"
                );
                false
            }
        };
        Ok(Self {
            iface: iface.to_owned(),
            filter: setup.filter.clone(),
            shared,
            threads,
            breakers,
            sees_sent,
            captured: Some(receiver),
            packet_log: packet_log_receiver,
            warned_drops: 0,
            last_warning: None,
        })
    }

    /// Logs a warning when libpcap dropped packets since the last warning (at most one
    /// every few seconds).
    fn warn_of_drops(&mut self, drops: CaptureDrops) {
        let total = drops.dropped + drops.if_dropped;
        if total > self.warned_drops && self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY)
        {
            warn!(
                "libpcap lost {} packets on {} ({} in all: {} for want of buffer space, {} by \
                 the interface); the counts are short by as many. XDP (--backend xdp) loses none",
                total - self.warned_drops,
                self.iface,
                total,
                drops.dropped,
                drops.if_dropped
            );
            self.warned_drops = total;
            self.last_warning = Some(Instant::now());
        }
    }
}

/// The packet log as the capture thread feeds it: the XDP program's rules (a record
/// per counted packet, within a rate cap per second of packet time), in userspace.
struct PacketLogFeed {
    cap: RateCap,
    records: tokio::sync::mpsc::Sender<PacketRecord>,
}

impl PacketLogFeed {
    /// Queues the record when the cap admits it; whether it was left out.
    fn offer(&mut self, record: PacketRecord) -> bool {
        !self.cap.admit(record.timestamp) || self.records.try_send(record).is_err()
    }
}

/// Where the capture thread sends what it copies of the packets.
struct Outputs {
    captured: tokio::sync::mpsc::Sender<CapturedPacket>,
    capture_snaplen: u32,
    packet_log: Option<PacketLogFeed>,
}

/// The incoming packets: counted, logged (`--packets`), and copied to the captures
/// they belong to.
fn count_incoming(mut capture: Capture<Active>, shared: &Shared, iface: &str, mut out: Outputs) {
    let mut last_stats = Instant::now();
    let mut drops = DropCounter::default();
    let mut lost = 0u64;
    let mut last_lost_warning: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        match capture.next_packet() {
            Ok(packet) => {
                let header = *packet.header;
                let frame = SnappedFrame {
                    data: packet.data,
                    len: header.len as usize,
                };
                let at = timestamp(&header);
                let counted = shared.counters().count(&frame, at);
                if let (Some(log), Some(info)) = (&mut out.packet_log, &counted.packet) {
                    let record = PacketRecord::of(info, u64::from(header.len), at);
                    if log.offer(record) {
                        shared.packet_log_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for id in counted.captures.into_iter().flatten() {
                    let keep = packet.data.len().min(out.capture_snaplen as usize);
                    let copy = CapturedPacket {
                        capture_id: id,
                        timestamp: at,
                        orig_len: header.len,
                        data: packet.data[..keep].to_vec(),
                    };
                    if out.captured.try_send(copy).is_err() {
                        lost += 1;
                    }
                }
            }
            Err(pcap::Error::TimeoutExpired) => {}
            // `NoMorePackets` is libpcap's answer to a broken loop: shutdown.
            Err(pcap::Error::NoMorePackets) => return,
            Err(err) => {
                warn!("the capture on {iface} stopped: {err}; its counts stay as they were");
                return;
            }
        }
        if lost > 0 && last_lost_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            warn!("triggered capture lost {lost} packets (the writer's queue was full)");
            lost = 0;
            last_lost_warning = Some(Instant::now());
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            match capture.stats() {
                Ok(stat) => {
                    let totals = drops.update(stat);
                    *shared
                        .drops
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = totals;
                }
                Err(err) => debug!("libpcap statistics on {iface}: {err}"),
            }
        }
    }
}

/// The packets the host sends: only their SYN-ACKs are counted.
fn count_sent(mut capture: Capture<Active>, shared: &Shared, iface: &str) {
    while !shared.stop.load(Ordering::Relaxed) {
        match capture.next_packet() {
            Ok(packet) => {
                let frame = SnappedFrame {
                    data: packet.data,
                    len: packet.header.len as usize,
                };
                shared.counters().count_sent(&frame);
            }
            Err(pcap::Error::TimeoutExpired) => {}
            Err(pcap::Error::NoMorePackets) => return,
            Err(err) => {
                warn!("the capture of SYN-ACKs sent on {iface} stopped: {err}");
                return;
            }
        }
    }
}

/// libpcap's drop counters are 32-bit and wrap: this keeps 64-bit totals.
#[derive(Default)]
struct DropCounter {
    last: Option<pcap::Stat>,
    totals: CaptureDrops,
}

impl DropCounter {
    fn update(&mut self, stat: pcap::Stat) -> CaptureDrops {
        let (dropped, if_dropped) = match self.last {
            Some(last) => (
                stat.dropped.wrapping_sub(last.dropped),
                stat.if_dropped.wrapping_sub(last.if_dropped),
            ),
            None => (stat.dropped, stat.if_dropped),
        };
        self.totals.dropped += u64::from(dropped);
        self.totals.if_dropped += u64::from(if_dropped);
        self.last = Some(stat);
        self.totals
    }
}

impl PcapBackend {
    /// Tells the capture threads to stop.
    fn stop_threads(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // A read waiting for a packet that never comes (in immediate mode libpcap may
        // wait past its timeout) returns at once when the loop is broken.
        for breaker in &self.breakers {
            breaker.breakloop();
        }
    }
}

/// Stops the capture threads and waits for them a while, unless `shutdown` took them.
impl Drop for PcapBackend {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop_threads();
        let give_up = Instant::now() + SHUTDOWN_WAIT;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        for thread in self.threads.drain(..) {
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                debug!("a capture thread did not stop within {SHUTDOWN_WAIT:?}; left behind");
            }
        }
    }
}

impl Backend for PcapBackend {
    fn name(&self) -> &'static str {
        "pcap"
    }

    fn describe(&self) -> String {
        match &self.filter {
            Some(filter) => format!("pcap on {} (filter `{filter}`)", self.iface),
            None => format!("pcap on {}", self.iface),
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        let taken = Instant::now();
        let mut snapshot = self.shared.counters().snapshot(taken, self.sees_sent);
        let drops = *self
            .shared
            .drops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        snapshot.capture_drops = Some(drops);
        self.warn_of_drops(drops);
        Ok(snapshot)
    }

    fn set_scan_epoch(&mut self, epoch: u64) -> Result<()> {
        self.shared.counters().set_scan_epoch(epoch);
        Ok(())
    }

    fn arm_capture(&mut self, id: u32, target: CaptureTarget) -> Result<()> {
        self.shared.counters().set_capture_target(target, Some(id));
        Ok(())
    }

    fn disarm_capture(&mut self, target: CaptureTarget) -> Result<()> {
        self.shared.counters().set_capture_target(target, None);
        Ok(())
    }

    fn captured_packets(&mut self) -> Option<tokio::sync::mpsc::Receiver<CapturedPacket>> {
        self.captured.take()
    }

    fn packet_log(&mut self) -> Option<tokio::sync::mpsc::Receiver<PacketRecord>> {
        self.packet_log.take()
    }

    fn packet_log_skipped(&mut self) -> u64 {
        self.shared.packet_log_skipped.load(Ordering::Relaxed)
    }

    /// One task that waits for the capture threads to stop and joins them; aborted at
    /// the caller's deadline, it leaves them behind.
    fn shutdown(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        if self.threads.is_empty() {
            return Vec::new();
        }
        self.stop_threads();
        let threads = std::mem::take(&mut self.threads);
        vec![tokio::spawn(async move {
            while threads.iter().any(|t| !t.is_finished()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for thread in threads {
                let _ = thread.join();
            }
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_survive_the_32_bit_wrap() {
        let stat = |dropped, if_dropped| pcap::Stat {
            received: 0,
            dropped,
            if_dropped,
        };
        let mut counter = DropCounter::default();
        assert_eq!(counter.update(stat(5, 1)).dropped, 5);
        assert_eq!(
            counter.update(stat(u32::MAX, 1)).dropped,
            u64::from(u32::MAX)
        );
        let after_wrap = counter.update(stat(3, 2));
        assert_eq!(after_wrap.dropped, u64::from(u32::MAX) + 4);
        assert_eq!(after_wrap.if_dropped, 2);
    }

    #[test]
    fn the_packet_log_leaves_out_what_is_over_the_cap_or_finds_the_queue_full() {
        let (records, mut receiver) = tokio::sync::mpsc::channel(2);
        let mut feed = PacketLogFeed {
            cap: RateCap::new(3),
            records,
        };
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let record = |ms| PacketRecord {
            timestamp: at(ms),
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            class: monitor_common::Class::Udp,
            ip_proto: 17,
            src_port: 1,
            dst_port: 2,
            len: 60,
            tcp_flags: 0,
        };
        // Three admitted in second 1, of which the queue (2) takes two; the fourth is
        // over the cap.
        let left_out: Vec<bool> = [1_000, 1_100, 1_200, 1_300]
            .into_iter()
            .map(|ms| feed.offer(record(ms)))
            .collect();
        assert_eq!(left_out, [false, false, true, true]);
        assert_eq!(receiver.try_recv().unwrap().timestamp, at(1_000));
        assert_eq!(receiver.try_recv().unwrap().timestamp, at(1_100));
        // A new second: the cap opens again.
        assert!(!feed.offer(record(2_000)));
        assert_eq!(receiver.try_recv().unwrap().timestamp, at(2_000));
    }
}
