//! The XDP backend: loads the compiled program, attaches it through a BPF link (so a
//! killed monitor leaves nothing attached) and reads its per-CPU maps.
//!
//! One job per file: `privileges` (may we?), `load` (object, verifier, attach with
//! fallback), `settings` (what userspace writes into the maps), `counters` (what it
//! reads), `table` (the per-source tables mapped in place), `flows` (large flows
//! followed), `readers` (the tasks draining the program's streams), `clock` (kernel
//! timestamps to wall-clock time). This file holds the backend that ties them together.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use anyhow::{Context as _, Result};
use aya::Ebpf;
use log::{debug, warn};
use monitor_common::{
    SourceCounters,
    counters::{BanEntry, Settings},
    names,
    view::VIEW_LOG,
};
use tokio::task::JoinHandle;

use super::Backend;
use crate::{
    config::XdpModeArg,
    iface,
    model::{
        capture::{CaptureTarget, CapturedPacket},
        packet::PacketRecord,
        snapshot::Snapshot,
        source_list::SourceList,
    },
};

mod clock;
mod counters;
mod flows;
mod load;
mod privileges;
mod readers;
mod settings;
mod table;

pub use counters::{
    read_dropped, read_global, read_listed_destinations, read_sources, read_syn_acks_sent,
};
use counters::{read_packet_log_state, read_sources_into};
use load::AttachedMode;
pub use load::{load_object, load_program};
pub use privileges::check_privileges;
pub use settings::{KernelSetup, configure, exempt_from_blocklist, set_ban};
pub use table::MappedTable;

pub struct XdpBackend {
    ebpf: Ebpf,
    iface: String,
    mode: AttachedMode,
    settings: Settings,
    /// Flows the kernel reported as large, followed while they grow.
    flows: flows::FollowedFlows,
    /// A per-source map the polling loop gave back (`recycle`), refilled by the next
    /// snapshot instead of a new one whose pages are all faulted in afresh.
    spare_sources: Option<SourceList<SourceCounters>>,
    /// The per-source table, mapped once.
    source_table: MappedTable<SourceCounters>,
    /// The SYN-ACKs sent, mapped once, when the egress classifier counts them.
    syn_acks: Option<MappedTable<u64>>,
    /// Packet-log records dropped because the printer's queue was full.
    packet_log_queue_full: Arc<AtomicU64>,
    /// The reader tasks started (kernel log, captures, packet log), for `shutdown`.
    tasks: Vec<JoinHandle<()>>,
}

impl XdpBackend {
    /// Loads the program, configures it and attaches it to `iface`.
    pub fn attach(iface_name: &str, mode: XdpModeArg, setup: &KernelSetup<'_>) -> Result<Self> {
        iface::index(iface_name)?;
        check_privileges()?;
        let mut ebpf = load::load_object_sized(
            setup.max_sources,
            (setup.blocklist.len() + setup.exempt.len()) as u32,
            setup.max_bans,
        )?;
        let tasks = readers::start_kernel_log(&mut ebpf).into_iter().collect();
        let settings = setup.settings();
        configure(&mut ebpf, setup.blocklist, &settings)?;
        if setup.mitigation != 0 {
            exempt_from_blocklist(&mut ebpf, setup.blocklist, setup.exempt)?;
        }
        let flows = flows::FollowedFlows::new(&mut ebpf)?;
        let program = load_program(&mut ebpf, names::MONITOR_PROGRAM)?;
        let mode = load::attach_program(program, iface_name, mode)?;
        let egress = match load::attach_egress(&mut ebpf, iface_name) {
            Ok(()) => true,
            Err(err) => {
                warn!(
                    "SYN-ACKs sent are not counted, so the SYN:SYN-ACK ratio check is off: {err:#}"
                );
                false
            }
        };
        let source_table = MappedTable::map(&ebpf, names::SOURCE_TABLE)?;
        let syn_acks = if egress {
            Some(MappedTable::map(&ebpf, names::SYN_ACKS_SENT)?)
        } else {
            None
        };
        Ok(Self {
            ebpf,
            iface: iface_name.to_owned(),
            mode,
            settings,
            flows,
            spare_sources: None,
            source_table,
            syn_acks,
            packet_log_queue_full: Arc::default(),
            tasks,
        })
    }

    /// Points `target` at capture `id`, or removes it (`None`), and tells the program
    /// how many targets are armed.
    fn set_capture_target(&mut self, target: CaptureTarget, id: Option<u32>) -> Result<()> {
        self.settings.captures_armed = settings::set_capture_target(&mut self.ebpf, target, id)?;
        settings::write_settings(&mut self.ebpf, &self.settings)
    }

    pub fn mode(&self) -> AttachedMode {
        self.mode
    }
}

impl Backend for XdpBackend {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn describe(&self) -> String {
        format!("xdp ({} mode) on {}", self.mode.as_str(), self.iface)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        let taken = Instant::now();
        // Sources before the host totals: the totals then cover at least what the
        // sources add up to (a top source never shows more than the whole host).
        let mut sources = self.spare_sources.take().unwrap_or_default();
        read_sources_into(&self.ebpf, &self.source_table, &mut sources)?;
        Ok(Snapshot {
            taken,
            global: read_global(&self.ebpf)?,
            sources,
            listed_destinations: read_listed_destinations(&self.ebpf)?,
            large_flows: self.flows.update(&self.ebpf)?,
            syn_acks_sent: self.syn_acks.as_ref().map(counters::syn_acks_sent),
            capture_drops: None,
            dropped: if self.settings.mitigation != 0 {
                read_dropped(&self.ebpf)?
            } else {
                HashMap::new()
            },
        })
    }

    fn recycle(&mut self, old: Snapshot) {
        self.spare_sources = Some(old.sources);
    }

    fn can_mitigate(&self) -> bool {
        true
    }

    fn ban(&mut self, source: IpAddr, entry: BanEntry) -> Result<()> {
        self.settings.bans = set_ban(&mut self.ebpf, source, Some(entry))?;
        settings::write_settings(&mut self.ebpf, &self.settings)
    }

    fn unban(&mut self, source: IpAddr) -> Result<()> {
        self.settings.bans = set_ban(&mut self.ebpf, source, None)?;
        settings::write_settings(&mut self.ebpf, &self.settings)
    }

    fn set_scan_epoch(&mut self, epoch: u64) -> Result<()> {
        self.settings.scan_epoch = epoch;
        settings::write_settings(&mut self.ebpf, &self.settings)
    }

    fn arm_capture(&mut self, id: u32, target: CaptureTarget) -> Result<()> {
        self.set_capture_target(target, Some(id))
            .context("failed to arm the capture")
    }

    fn disarm_capture(&mut self, target: CaptureTarget) -> Result<()> {
        self.set_capture_target(target, None)
            .context("failed to disarm the capture")
    }

    fn captured_packets(&mut self) -> Option<tokio::sync::mpsc::Receiver<CapturedPacket>> {
        match readers::start_capture_readers(&mut self.ebpf) {
            Ok((packets, tasks)) => {
                self.tasks.extend(tasks);
                Some(packets)
            }
            Err(err) => {
                warn!("triggered captures are off: {err:#}");
                None
            }
        }
    }

    fn packet_log(&mut self) -> Option<tokio::sync::mpsc::Receiver<PacketRecord>> {
        if self.settings.packet_view & VIEW_LOG == 0 {
            return None;
        }
        let queue_full = self.packet_log_queue_full.clone();
        match readers::start_packet_log_reader(&mut self.ebpf, queue_full) {
            Ok((records, task)) => {
                self.tasks.push(task);
                Some(records)
            }
            Err(err) => {
                warn!("the packet log is off: {err:#}");
                None
            }
        }
    }

    fn packet_log_skipped(&mut self) -> u64 {
        let kernel = read_packet_log_state(&self.ebpf).map_or_else(
            |err| {
                debug!("failed to read the packet log's state: {err:#}");
                0
            },
            |s| s.rate_skipped + s.ring_full,
        );
        kernel + self.packet_log_queue_full.load(Ordering::Relaxed)
    }

    /// The readers wait on the kernel's buffers and stop only when cancelled.
    fn shutdown(&mut self) -> Vec<JoinHandle<()>> {
        let tasks = std::mem::take(&mut self.tasks);
        tasks.iter().for_each(JoinHandle::abort);
        tasks
    }
}

/// Dropped without `shutdown` (a failed start, a test): the readers are cancelled all
/// the same, as the pcap backend stops its threads.
impl Drop for XdpBackend {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}
