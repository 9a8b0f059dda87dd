//! The XDP backend: loads the compiled program, attaches it through a BPF link (so a
//! killed monitor leaves nothing attached) and reads its per-CPU maps.

use std::{collections::HashMap, io, net::IpAddr, time::Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{MapError, PerCpuArray, PerCpuHashMap},
    programs::{ProgramError, Xdp, XdpMode},
};
use log::{debug, warn};
use monitor_common::{GlobalCounters, SourceCache, SourceCounters, SourceKey, names};

use super::{Backend, Snapshot};
use crate::{cli::XdpModeArg, iface};

/// The compiled XDP object, built by `build.rs`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor-xdp"));

const PRIVILEGE_HINT: &str = "run as root (sudo), or grant the binary the capabilities: \
    sudo setcap cap_bpf,cap_net_admin,cap_perfmon+ep <path to monitor>";

/// Fails with one line naming the missing capabilities, before anything is loaded.
pub fn check_privileges() -> Result<()> {
    use caps::{CapSet, Capability};
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    let mut missing = Vec::new();
    if !has(Capability::CAP_BPF) && !has(Capability::CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(Capability::CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !missing.is_empty() {
        bail!(
            "missing capability {}: {PRIVILEGE_HINT}",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// Loads the object into the kernel (maps created, programs not yet loaded).
pub fn load_object(max_sources: u32) -> Result<Ebpf> {
    EbpfLoader::new()
        .map_max_entries(names::SOURCE_COUNTERS, max_sources)
        .load(EBPF_OBJECT)
        .map_err(|err| match &err {
            EbpfError::MapError(MapError::CreateError { io_error, .. })
                if io_error.kind() == io::ErrorKind::PermissionDenied =>
            {
                anyhow!("the kernel refused to create BPF maps ({io_error}): {PRIVILEGE_HINT}")
            }
            _ => anyhow!(err).context("failed to load the XDP object"),
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
            let last = verifier_log.to_string();
            let reason = last
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            anyhow!("the kernel rejected the XDP program `{name}` ({io_error}): {reason}")
        }
        other => anyhow!(other).context(format!("failed to load the XDP program `{name}`")),
    })?;
    Ok(program)
}

/// Host-wide counters, summed over CPUs.
pub fn read_global(ebpf: &Ebpf) -> Result<GlobalCounters> {
    let map = ebpf
        .map(names::GLOBAL_COUNTERS)
        .context("map GLOBAL_COUNTERS missing")?;
    let counters = PerCpuArray::<_, GlobalCounters>::try_from(map)?;
    let per_cpu = counters
        .get(&0, 0)
        .context("failed to read GLOBAL_COUNTERS")?;
    Ok(per_cpu
        .iter()
        .fold(GlobalCounters::default(), |sum, c| sum.merged(*c)))
}

/// Per-source counters, summed over CPUs: the per-source table plus the counts still
/// pending in each CPU's source cache. The table is read first: a slot flushed in
/// between is then missed once (and counted at the next poll), never counted twice.
pub fn read_sources(ebpf: &Ebpf) -> Result<HashMap<IpAddr, SourceCounters>> {
    let map = ebpf
        .map(names::SOURCE_COUNTERS)
        .context("map SOURCE_COUNTERS missing")?;
    let table = PerCpuHashMap::<_, SourceKey, SourceCounters>::try_from(map)?;
    let mut sources: HashMap<IpAddr, SourceCounters> = HashMap::new();
    for entry in table.iter() {
        match entry {
            Ok((key, per_cpu)) => {
                let sum = per_cpu
                    .iter()
                    .fold(SourceCounters::default(), |sum, c| sum.merged(*c));
                sources.insert(key.ip(), sum);
            }
            // The LRU can evict a key between listing it and reading it.
            Err(MapError::KeyNotFound) => continue,
            Err(err) => return Err(err).context("failed to read SOURCE_COUNTERS"),
        }
    }
    let map = ebpf
        .map(names::SOURCE_CACHE)
        .context("map SOURCE_CACHE missing")?;
    let cache = PerCpuArray::<_, SourceCache>::try_from(map)?;
    let per_cpu = cache.get(&0, 0).context("failed to read SOURCE_CACHE")?;
    for slot in per_cpu.iter().flat_map(|c| c.slots.iter()) {
        if slot.is_occupied() {
            let sum = sources.entry(slot.key.ip()).or_default();
            *sum = sum.merged(slot.counters);
        }
    }
    Ok(sources)
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

pub struct XdpBackend {
    ebpf: Ebpf,
    iface: String,
    mode: AttachedMode,
}

impl XdpBackend {
    /// Loads the program and attaches it to `iface`.
    pub fn attach(iface_name: &str, mode: XdpModeArg, max_sources: u32) -> Result<Self> {
        iface::index(iface_name)?;
        check_privileges()?;
        let mut ebpf = load_object(max_sources)?;
        start_kernel_log(&mut ebpf);
        let program = load_program(&mut ebpf, names::MONITOR_PROGRAM)?;
        let attach = |program: &mut Xdp, mode: XdpMode, label: &str| {
            program.attach(iface_name, mode).map_err(|err| {
                let busy = matches!(&err, ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::EBUSY));
                let err = anyhow!(err);
                if busy {
                    err.context(format!(
                        "interface `{iface_name}` already has an XDP program attached \
                         (is another monitor running on it?)"
                    ))
                } else {
                    err.context(format!("failed to attach XDP to `{iface_name}` in {label} mode"))
                }
            })
        };
        let mode = match mode {
            XdpModeArg::Native => {
                attach(program, XdpMode::Driver, "native")
                    .map_err(|e| e.context("try --xdp-mode skb"))?;
                AttachedMode::Native
            }
            XdpModeArg::Skb => {
                attach(program, XdpMode::Skb, "skb")?;
                AttachedMode::Skb
            }
            XdpModeArg::Auto => match attach(program, XdpMode::Driver, "native") {
                Ok(_) => AttachedMode::Native,
                Err(native) if format!("{native:#}").contains("already has an XDP program") => {
                    return Err(native);
                }
                Err(native) => {
                    warn!("{native:#}; falling back to generic (skb) mode, which is slower");
                    attach(program, XdpMode::Skb, "skb")?;
                    AttachedMode::Skb
                }
            },
        };
        Ok(Self {
            ebpf,
            iface: iface_name.to_owned(),
            mode,
        })
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
        Ok(Snapshot {
            taken,
            global: read_global(&self.ebpf)?,
            sources: read_sources(&self.ebpf)?,
        })
    }
}

/// Forwards the program's rare diagnostics (aya-log) to our log. The program logs
/// nothing per packet, so this task is idle in normal operation.
fn start_kernel_log(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => {
            debug!("kernel log not available: {err}");
            return;
        }
    };
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        // SAFETY: the logger owns its ring buffer's fd and keeps it open until it is
        // dropped, which only happens when the AsyncFd that wraps it is dropped.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
        };
        let Ok(mut fd) = registered else {
            return;
        };
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
