//! Getting the program into the kernel: the object loaded with its maps sized, a
//! program verified (the verifier's reason said in one line when it refuses), and
//! attached to the interface in the mode asked for, falling back from native to
//! generic (skb) mode when `auto` allows it; the egress classifier beside it.

use std::io;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::MapError,
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use log::{debug, warn};
use monitor_common::{
    counters::Settings,
    limits::{DEFAULT_MAX_BANS, MIN_BLOCKLIST_ENTRIES, MIN_DROPPED_SOURCES},
    names,
};

use super::{privileges::PRIVILEGE_HINT, settings::write_settings};
use crate::config::XdpModeArg;

/// The compiled XDP object, built by `build.rs`.
pub(super) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor-xdp"));

/// Loads the object into the kernel (maps created, programs not yet loaded).
pub fn load_object(max_sources: u32) -> Result<Ebpf> {
    load_object_sized(max_sources, MIN_BLOCKLIST_ENTRIES, DEFAULT_MAX_BANS)
}

/// [`load_object`] with room for `blocklist_capacity` prefixes and `max_bans` bans.
pub(super) fn load_object_sized(
    max_sources: u32,
    blocklist_capacity: u32,
    max_bans: u32,
) -> Result<Ebpf> {
    EbpfLoader::new()
        .map_max_entries(names::SOURCE_TABLE, max_sources)
        // The same shape as SOURCE_TABLE: the program uses its set count for both.
        .map_max_entries(names::SYN_ACKS_SENT, max_sources)
        // Banned sources and blocklisted ones seen dropping, not every source: it is read
        // whole each poll, and a hash map of 65,536 took 30-70 ms to read.
        .map_max_entries(names::DROPPED_SOURCES, MIN_DROPPED_SOURCES.max(max_bans))
        .map_max_entries(names::BANS, max_bans.max(1))
        .map_max_entries(
            names::BLOCKLIST,
            blocklist_capacity.max(MIN_BLOCKLIST_ENTRIES),
        )
        .load(EBPF_OBJECT)
        .map_err(|err| match &err {
            EbpfError::MapError(MapError::CreateError { io_error, .. })
                if io_error.kind() == io::ErrorKind::PermissionDenied =>
            {
                anyhow!("the kernel refused to create BPF maps ({io_error}): {PRIVILEGE_HINT}")
            }
            _ => anyhow!(err).context("failed to load the XDP object"),
        })
        .and_then(|mut ebpf| {
            // The program needs the per-source table's shape before its first packet.
            write_settings(&mut ebpf, &Settings::default())?;
            Ok(ebpf)
        })
}

/// Loads (verifies) one XDP program of the object and returns it.
pub fn load_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("program `{name}` missing from the XDP object"))?
        .try_into()
        .with_context(|| format!("program `{name}` is not an XDP program"))?;
    program.load().map_err(|err| match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            debug!("verifier log:\n{verifier_log}");
            // The reason is the last line before the verifier's closing statistics.
            let log = verifier_log.to_string();
            let statistics = [
                "processed ",
                "verification time",
                "stack depth",
                "max_states",
            ];
            let reason = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && !statistics.iter().any(|s| l.starts_with(s)))
                .unwrap_or("");
            anyhow!("the kernel rejected the XDP program `{name}` ({io_error}): {reason}")
        }
        other => anyhow!(other).context(format!("failed to load the XDP program `{name}`")),
    })?;
    Ok(program)
}

/// Which mode the program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Skb,
}

impl AttachedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Skb => "skb",
        }
    }
}

/// Why one attach failed. Being busy is told apart: another program on the interface
/// is a reason to stop, not to try the other mode.
#[derive(Debug, thiserror::Error)]
enum AttachError {
    #[error(
        "interface `{iface}` already has an XDP program attached \
         (is another monitor running on it?)"
    )]
    Busy {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("failed to attach XDP to `{iface}` in {mode} mode")]
    Failed {
        iface: String,
        mode: &'static str,
        #[source]
        source: ProgramError,
    },
}

/// Attaches `program` to `iface` in `mode` (through a BPF link, so a killed monitor
/// leaves nothing attached).
fn attach_in(
    program: &mut Xdp,
    iface: &str,
    mode: XdpMode,
    label: &'static str,
) -> Result<(), AttachError> {
    program.attach(iface, mode).map(drop).map_err(|err| {
        let busy = matches!(&err, ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::EBUSY));
        let iface = iface.to_owned();
        if busy {
            AttachError::Busy { iface, source: err }
        } else {
            AttachError::Failed {
                iface,
                mode: label,
                source: err,
            }
        }
    })
}

/// Attaches the loaded `program` to `iface` as `--xdp-mode` asks: `auto` tries native
/// mode first and falls back to skb mode, unless the interface is taken.
pub(super) fn attach_program(
    program: &mut Xdp,
    iface: &str,
    mode: XdpModeArg,
) -> Result<AttachedMode> {
    Ok(match mode {
        XdpModeArg::Native => {
            attach_in(program, iface, XdpMode::Driver, "native")
                .map_err(|e| anyhow!("{:#}; try --xdp-mode skb", anyhow!(e)))?;
            AttachedMode::Native
        }
        XdpModeArg::Skb => {
            attach_in(program, iface, XdpMode::Skb, "skb")?;
            AttachedMode::Skb
        }
        XdpModeArg::Auto => match attach_in(program, iface, XdpMode::Driver, "native") {
            Ok(()) => AttachedMode::Native,
            Err(busy @ AttachError::Busy { .. }) => return Err(busy.into()),
            Err(native) => {
                warn!(
                    "{:#}; falling back to generic (skb) mode, which is slower",
                    anyhow!(native)
                );
                attach_in(program, iface, XdpMode::Skb, "skb")?;
                AttachedMode::Skb
            }
        },
    })
}

/// Attaches the egress classifier (through a TCX link on kernels from 6.6, which the
/// kernel removes when the monitor exits, however it exits).
pub(super) fn attach_egress(ebpf: &mut Ebpf, iface: &str) -> Result<()> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(names::EGRESS_PROGRAM)
        .context("egress program missing from the object")?
        .try_into()?;
    program
        .load()
        .context("failed to load the egress classifier")?;
    program
        .attach(iface, TcAttachType::Egress)
        .with_context(|| format!("failed to attach the egress classifier to `{iface}`"))?;
    Ok(())
}
