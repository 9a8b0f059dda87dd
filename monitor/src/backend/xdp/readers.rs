//! The program's three streams to userspace, each drained by tasks of one kind
//! ([`spawn_reader`]): the packet log's ring, the captured packets' per-CPU perf
//! buffers, and the kernel's own log (aya-log, forwarded to our log). The packet log's
//! and the captures' readers forward into bounded queues and drop what does not fit
//! (counted), so neither the polling loop nor the program ever waits for them.

use std::{
    io,
    ops::ControlFlow,
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{
        MapData, PerfEventArray, RingBuf,
        perf::{PerfEvent, PerfEventArrayBuffer},
    },
};
use log::{debug, warn};
use monitor_common::{
    SourceKey,
    counters::CaptureMeta,
    names,
    view::{PacketLogEvent, class_from_u8},
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc::{Receiver, Sender, channel},
    task::JoinHandle,
};

use super::clock::MonotonicToWall;
use crate::{
    backend::{CAPTURE_QUEUE, PACKET_LOG_QUEUE},
    model::{capture::CapturedPacket, packet::PacketRecord},
};

/// Perf buffer pages per CPU for captured packets (4 MiB each with 4 KiB pages):
/// room for a quarter second of a 100k pps flood at the default snap length.
const CAPTURE_PAGES_PER_CPU: usize = 1024;

/// Spawns a task that calls `drain` with `source` each time its fd is readable, until
/// `drain` breaks (its queue's receiver is gone) or the task is aborted. Must be called
/// within the async runtime.
///
/// # Safety
///
/// `source` owns the fd it returns from `as_raw_fd`, always the same one, and keeps it
/// open until `source` is dropped (which happens with the task).
unsafe fn spawn_reader<S: AsRawFd + Send + 'static>(
    source: S,
    mut drain: impl FnMut(&mut S) -> ControlFlow<()> + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    // SAFETY: the caller's.
    let mut fd = unsafe { AsyncFd::register_with_interest(source, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            let flow = drain(guard.get_inner_mut());
            guard.clear_ready();
            if flow.is_break() {
                return;
            }
        }
    }))
}

/// One task drains the packet-log ring into a bounded queue; a full queue drops the
/// record (counted in `queue_full`) rather than hold up the ring.
pub(super) fn start_packet_log_reader(
    ebpf: &mut Ebpf,
    queue_full: Arc<AtomicU64>,
) -> Result<(Receiver<PacketRecord>, JoinHandle<()>)> {
    let ring = RingBuf::try_from(
        ebpf.take_map(names::PACKET_LOG)
            .context("map PACKET_LOG missing")?,
    )?;
    let (sender, receiver) = channel(PACKET_LOG_QUEUE);
    let drain = move |ring: &mut RingBuf<MapData>| {
        let clock = MonotonicToWall::now();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<PacketLogEvent>() {
                continue;
            }
            // SAFETY: the program writes a PacketLogEvent, a plain-old-data struct.
            let event: PacketLogEvent =
                unsafe { item.as_ptr().cast::<PacketLogEvent>().read_unaligned() };
            if sender.try_send(packet_record(&event, &clock)).is_err() {
                queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
        until_closed(&sender)
    };
    // SAFETY: the ring owns its map fd and keeps it open until it is dropped.
    let task = unsafe { spawn_reader(ring, drain) }
        .map_err(|e| anyhow!("failed to watch the packet log's ring buffer: {e}"))?;
    Ok((receiver, task))
}

/// Keep reading while someone receives what is read.
fn until_closed<T>(sender: &Sender<T>) -> ControlFlow<()> {
    if sender.is_closed() {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

fn packet_record(event: &PacketLogEvent, clock: &MonotonicToWall) -> PacketRecord {
    let ip = |addr: &monitor_common::Addr| SourceKey { addr: *addr }.ip();
    PacketRecord {
        timestamp: clock.at(event.ts_ns),
        src: ip(&event.src),
        dst: ip(&event.dst),
        class: class_from_u8(event.class),
        ip_proto: event.ip_proto,
        src_port: event.src_port,
        dst_port: event.dst_port,
        len: event.len,
        tcp_flags: event.tcp_flags,
    }
}

/// One reader task per CPU drains that CPU's perf buffer into a bounded queue. A full
/// queue or a full perf buffer loses packets of the capture (counted and logged), never
/// delays the polling loop or the XDP program.
pub(super) fn start_capture_readers(
    ebpf: &mut Ebpf,
) -> Result<(Receiver<CapturedPacket>, Vec<JoinHandle<()>>)> {
    let mut array = PerfEventArray::try_from(
        ebpf.take_map(names::CAPTURED)
            .context("map CAPTURED missing")?,
    )?;
    let (sender, receiver) = channel(CAPTURE_QUEUE);
    let cpus = aya::util::online_cpus().map_err(|(_, err)| err)?;
    let mut tasks = Vec::with_capacity(cpus.len());
    for cpu in cpus {
        match start_capture_reader(&mut array, cpu, sender.clone()) {
            Ok(task) => tasks.push(task),
            Err(err) => {
                // Those already started would wait on their buffers with no one to stop
                // them.
                tasks.iter().for_each(JoinHandle::abort);
                return Err(err);
            }
        }
    }
    Ok((receiver, tasks))
}

/// The reader of `cpu`'s perf buffer.
fn start_capture_reader(
    array: &mut PerfEventArray<MapData>,
    cpu: u32,
    sender: Sender<CapturedPacket>,
) -> Result<JoinHandle<()>> {
    let buffer = array
        .open(cpu, Some(CAPTURE_PAGES_PER_CPU))
        .with_context(|| format!("failed to open the capture buffer of CPU {cpu}"))?;
    let mut lost = 0u64;
    // One warning per CPU at most every few seconds, however hard the flood.
    let mut last_warning: Option<Instant> = None;
    let drain = move |buffer: &mut PerfEventArrayBuffer<MapData>| {
        // One clock reading for the whole drain, not two per packet.
        let clock = MonotonicToWall::now();
        buffer.for_each(|event| match event {
            PerfEvent::Sample { head, tail } => {
                let sample = [head, tail].concat();
                match parse_captured(&sample, &clock) {
                    Some(packet) => {
                        if sender.try_send(packet).is_err() {
                            lost += 1;
                        }
                    }
                    None => lost += 1,
                }
            }
            PerfEvent::Lost { count } => lost += count,
        });
        if lost > 0 && last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            warn!("capture on CPU {cpu} lost {lost} packets (buffers full)");
            lost = 0;
            last_warning = Some(Instant::now());
        }
        until_closed(&sender)
    };
    // SAFETY: the buffer owns its perf fd and keeps it open until it is dropped.
    unsafe { spawn_reader(buffer, drain) }
        .map_err(|e| anyhow!("failed to watch the capture buffer of CPU {cpu}: {e}"))
}

/// A perf sample: a `CaptureMeta`, then the packet's first bytes.
fn parse_captured(sample: &[u8], clock: &MonotonicToWall) -> Option<CapturedPacket> {
    let header = sample.get(..size_of::<CaptureMeta>())?;
    // SAFETY: CaptureMeta is plain old data; the length was checked above.
    let meta: CaptureMeta = unsafe { header.as_ptr().cast::<CaptureMeta>().read_unaligned() };
    let data = sample.get(size_of::<CaptureMeta>()..)?;
    let caplen = (meta.caplen as usize).min(data.len());
    Some(CapturedPacket {
        capture_id: meta.capture_id,
        timestamp: clock.at(meta.ts_ns),
        orig_len: meta.len,
        data: data[..caplen].to_vec(),
    })
}

/// Forwards the program's rare diagnostics (aya-log) to our log. The program logs
/// nothing per packet, so this task is idle in normal operation. `None` when there is
/// no log to read or no runtime to read it in.
pub(super) fn start_kernel_log(ebpf: &mut Ebpf) -> Option<JoinHandle<()>> {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => {
            debug!("kernel log not available: {err}");
            return None;
        }
    };
    // Outside a runtime (a test attaching the program), there is nowhere to read it.
    tokio::runtime::Handle::try_current().ok()?;
    let flush = |logger: &mut aya_log::EbpfLogger<&'static dyn log::Log>| {
        logger.flush();
        ControlFlow::Continue(())
    };
    // SAFETY: the logger owns its ring buffer's fd and keeps it open until it is
    // dropped.
    match unsafe { spawn_reader(logger, flush) } {
        Ok(task) => Some(task),
        Err(err) => {
            debug!("kernel log not available: {err}");
            None
        }
    }
}
