//! Which backend counts the packets: `--backend auto|xdp|pcap|ifstats`. `auto` takes
//! the best one this host allows and logs which and why: XDP on Linux with the rights
//! to load BPF programs, else libpcap if it can open the interface, else the
//! interface's own counters.

use std::num::NonZeroUsize;

use anyhow::{Result, bail};
use log::{info, warn};

use super::{
    Backend, ifstats,
    pcap::{InvalidFilter, PcapBackend, PcapSetup},
    software::CountingSetup,
};
use crate::{
    config::{BackendKind, Config},
    detect::Lists,
    model::filter::Filter,
};

/// What the backend shows of each packet besides counting it: `--filter` (count and log
/// only the matching packets) and `--packets` (the packet log, at most this many lines
/// a second).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacketView {
    pub filter: Option<Filter>,
    pub packet_log_rate: Option<u32>,
}

/// Opens the backend the configuration asks for on `iface`.
pub fn open(
    view: &PacketView,
    config: &Config,
    lists: &Lists,
    iface: &str,
) -> Result<Box<dyn Backend + Send>> {
    // A wrong interface is one line, whichever backend would have been tried.
    crate::iface::check(iface)?;
    match config.capture.backend {
        BackendKind::Xdp => xdp(view, config, lists, iface),
        BackendKind::Pcap => Ok(Box::new(pcap(view, config, lists, iface)?)),
        BackendKind::Ifstats => open_ifstats(view, iface),
        BackendKind::Auto => auto(view, config, lists, iface),
    }
}

/// The filter and the packet log need a backend that sees each packet: one line saying
/// so when the interface counters are all there is.
fn refuse_packet_view(view: &PacketView) -> Result<()> {
    let option = if view.filter.is_some() {
        "--filter"
    } else if view.packet_log_rate.is_some() {
        "--packets"
    } else {
        return Ok(());
    };
    bail!(
        "{option} needs a backend that sees each packet (xdp or pcap); the ifstats backend \
         reads only the interface's counters"
    )
}

#[expect(
    clippy::redundant_closure_for_method_calls,
    reason = "the closure reads better than `<dyn Error + 'static>::is::<InvalidFilter>`"
)]
fn auto(
    view: &PacketView,
    config: &Config,
    lists: &Lists,
    iface: &str,
) -> Result<Box<dyn Backend + Send>> {
    #[cfg(target_os = "linux")]
    match super::xdp::check_privileges() {
        Ok(()) => {
            info!("backend xdp: this is Linux and the monitor may load BPF programs");
            return xdp(view, config, lists, iface);
        }
        Err(why) => info!("backend xdp not possible ({why:#}); trying libpcap"),
    }
    #[cfg(not(target_os = "linux"))]
    info!("backend xdp not possible: XDP needs Linux; trying libpcap");
    match pcap(view, config, lists, iface) {
        Ok(backend) => {
            info!("backend pcap: libpcap opened `{iface}`");
            Ok(Box::new(backend))
        }
        // A filter the user got wrong is theirs to fix, not a reason to fall back.
        Err(why) if why.chain().any(|e| e.is::<InvalidFilter>()) => Err(why),
        Err(why) => {
            warn!("backend pcap not possible ({why:#}); falling back to the interface counters");
            open_ifstats(view, iface)
        }
    }
}

#[cfg(target_os = "linux")]
fn xdp(
    view: &PacketView,
    config: &Config,
    lists: &Lists,
    iface: &str,
) -> Result<Box<dyn Backend + Send>> {
    let exempt = crate::mitigate::never_dropped(config, lists);
    let setup = super::xdp::KernelSetup {
        max_sources: config.capture.max_sources.get(),
        blocklist: lists.blocklist.entries(),
        large_flow_bytes: config.detection.large_download.bytes.get(),
        capture_snaplen: config.pcap.snaplen.0,
        mitigation: config.mitigate.mode.kernel_value(),
        exempt: &exempt,
        max_bans: config.mitigate.max_bans.get(),
        filter: view.filter.as_ref().map(|f| f.kernel),
        packet_log_rate: view.packet_log_rate,
    };
    if config.capture.bpf.is_some() {
        warn!("--bpf applies to the pcap backend only; XDP counts every packet");
    }
    let backend = super::xdp::XdpBackend::attach(iface, config.capture.xdp_mode, &setup)?;
    Ok(Box::new(backend))
}

#[cfg(not(target_os = "linux"))]
fn xdp(
    _view: &PacketView,
    _config: &Config,
    _lists: &Lists,
    _iface: &str,
) -> Result<Box<dyn Backend + Send>> {
    anyhow::bail!("the XDP backend needs Linux; use --backend pcap (or ifstats) on this system")
}

fn pcap(view: &PacketView, config: &Config, lists: &Lists, iface: &str) -> Result<PcapBackend> {
    let setup = PcapSetup {
        counting: CountingSetup {
            max_sources: NonZeroUsize::new(config.capture.max_sources.get() as usize)
                .unwrap_or(NonZeroUsize::MIN),
            blocklist: lists.blocklist.clone(),
            large_flow_bytes: config.detection.large_download.bytes.get(),
            filter: view.filter.as_ref().map(|f| f.kernel),
        },
        filter: config.capture.bpf.clone(),
        capture_snaplen: config.pcap.snaplen.0,
        packet_log_rate: view.packet_log_rate,
    };
    PcapBackend::open(iface, &setup)
}

fn open_ifstats(view: &PacketView, iface: &str) -> Result<Box<dyn Backend + Send>> {
    refuse_packet_view(view)?;
    let backend = ifstats::IfStatsBackend::open(iface)?;
    warn!("{}", ifstats::UNAVAILABLE);
    Ok(Box::new(backend))
}
