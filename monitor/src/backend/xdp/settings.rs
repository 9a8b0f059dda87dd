//! What userspace tells the program, through its maps: the settings (written at start
//! from [`KernelSetup`], then as bans, captures and scan epochs change), the blocklist
//! with its exemptions, the bans, and the capture targets.

use std::net::IpAddr;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{
        Array, HashMap as BpfHashMap, Map, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use monitor_common::{
    SourceKey,
    counters::{BLOCKLIST_EXEMPT, BanEntry, Settings},
    names,
    source_table::source_table_sets,
    view::{PacketFilter, VIEW_FILTER, VIEW_LOG},
};

use crate::model::{capture::CaptureTarget, cidr::Cidr};

/// What the program needs besides the interface: written into its maps at start.
#[derive(Clone, Debug, Default)]
pub struct KernelSetup<'a> {
    pub max_sources: u32,
    pub blocklist: &'a [Cidr],
    /// Inbound payload at which a flow is reported (0: large downloads off).
    pub large_flow_bytes: u64,
    /// Bytes of each captured packet copied to userspace.
    pub capture_snaplen: u32,
    /// `Settings::mitigation`: off, drop or dry-run.
    pub mitigation: u64,
    /// Never dropped even when blocklisted (the allowlists); used when mitigating.
    pub exempt: &'a [Cidr],
    /// Room for this many bans in the kernel.
    pub max_bans: u32,
    /// Packets it refuses are not counted (`--filter`).
    pub filter: Option<PacketFilter>,
    /// The packet log's lines per second (`--packets`); `None`: log off.
    pub packet_log_rate: Option<u32>,
}

impl KernelSetup<'_> {
    /// The settings the program starts with: scan epoch 1, nothing captured or banned.
    pub(super) fn settings(&self) -> Settings {
        Settings {
            scan_epoch: 1,
            blocklist_active: u64::from(!self.blocklist.is_empty()),
            blocklist_generation: 1,
            large_flow_bytes: self.large_flow_bytes,
            captures_armed: 0,
            capture_snaplen: u64::from(self.capture_snaplen),
            mitigation: self.mitigation,
            bans: 0,
            packet_view: if self.filter.is_some() {
                VIEW_FILTER
            } else {
                0
            } | if self.packet_log_rate.is_some() {
                VIEW_LOG
            } else {
                0
            },
            filter: self.filter.unwrap_or_default(),
            packet_log_rate: u64::from(self.packet_log_rate.unwrap_or(0)),
            // Filled in by `write_settings`.
            source_sets: 0,
        }
    }
}

/// The trie key for a CIDR: IPv4 as IPv4-mapped IPv6, its prefix moved by 96 bits.
pub(super) fn trie_key(cidr: &Cidr) -> Key<[u8; 16]> {
    match cidr.network() {
        IpAddr::V4(v4) => Key::new(u32::from(cidr.prefix()) + 96, v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => Key::new(u32::from(cidr.prefix()), v6.octets()),
    }
}

/// Marks the allowlisted parts of the blocklist in the kernel's trie as exempt, so
/// that mitigation never drops them (the allowlist wins, as in userspace): an
/// allowlisted prefix inside a blocklisted one is added as exempt (the longest match
/// wins), a blocklisted prefix inside an allowlisted one becomes exempt.
pub fn exempt_from_blocklist(ebpf: &mut Ebpf, blocklist: &[Cidr], exempt: &[Cidr]) -> Result<()> {
    let mut trie: LpmTrie<_, [u8; 16], u32> = ebpf
        .map_mut(names::BLOCKLIST)
        .context("map BLOCKLIST missing")?
        .try_into()?;
    for allowed in exempt {
        for listed in blocklist {
            let key = if allowed.contains(listed.network()) && allowed.prefix() <= listed.prefix() {
                trie_key(listed)
            } else if listed.contains(allowed.network()) {
                trie_key(allowed)
            } else {
                continue;
            };
            trie.insert(&key, BLOCKLIST_EXEMPT, 0).with_context(|| {
                format!("failed to exempt {allowed} from the kernel's blocklist")
            })?;
        }
    }
    Ok(())
}

/// Writes the blocklist into the kernel's trie and the settings into SETTINGS.
pub fn configure(ebpf: &mut Ebpf, blocklist: &[Cidr], settings: &Settings) -> Result<()> {
    let mut trie: LpmTrie<_, [u8; 16], u32> = ebpf
        .map_mut(names::BLOCKLIST)
        .context("map BLOCKLIST missing")?
        .try_into()?;
    for (index, cidr) in blocklist.iter().enumerate() {
        trie.insert(&trie_key(cidr), index as u32, 0)
            .with_context(|| format!("failed to add {cidr} to the kernel's blocklist"))?;
    }
    write_settings(ebpf, settings)
}

/// Writes `settings`, with the per-source table's shape filled in.
pub(super) fn write_settings(ebpf: &mut Ebpf, settings: &Settings) -> Result<()> {
    let entries = match ebpf.map(names::SOURCE_TABLE) {
        Some(Map::Array(data)) => data
            .info()
            .with_context(|| format!("failed to query map {}", names::SOURCE_TABLE))?
            .max_entries(),
        _ => bail!("map {} missing", names::SOURCE_TABLE),
    };
    let settings = Settings {
        source_sets: source_table_sets(entries),
        ..*settings
    };
    let mut array: Array<_, Settings> = ebpf
        .map_mut(names::SETTINGS)
        .context("map SETTINGS missing")?
        .try_into()?;
    array
        .set(0, settings, 0)
        .context("failed to write SETTINGS")
}

/// Puts `source` in BANS (`Some`) or takes it out, and returns how many are there.
pub fn set_ban(ebpf: &mut Ebpf, source: IpAddr, entry: Option<BanEntry>) -> Result<u64> {
    let mut bans: BpfHashMap<_, SourceKey, BanEntry> = ebpf
        .map_mut(names::BANS)
        .context("map BANS missing")?
        .try_into()?;
    let key = SourceKey::from_ip(source);
    match entry {
        Some(entry) => bans
            .insert(key, entry, 0)
            .with_context(|| format!("failed to ban {source} in the kernel"))?,
        None => match bans.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(err) => {
                return Err(anyhow!(err).context(format!("failed to unban {source}")));
            }
        },
    }
    Ok(bans.keys().count() as u64)
}

/// Points `target` at capture `id` in `CAPTURE_TARGETS`, or removes it (`None`), and
/// returns how many targets are armed.
pub(super) fn set_capture_target(
    ebpf: &mut Ebpf,
    target: CaptureTarget,
    id: Option<u32>,
) -> Result<u64> {
    let mut targets: BpfHashMap<_, SourceKey, u32> = ebpf
        .map_mut(names::CAPTURE_TARGETS)
        .context("map CAPTURE_TARGETS missing")?
        .try_into()?;
    let key = capture_key(target);
    match id {
        Some(id) => targets.insert(key, id, 0)?,
        None => match targets.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(err) => return Err(err.into()),
        },
    }
    Ok(targets.keys().count() as u64)
}

/// The `CAPTURE_TARGETS` key for a target: the source, or :: for every source.
fn capture_key(target: CaptureTarget) -> SourceKey {
    target.map_or_else(SourceKey::default, SourceKey::from_ip)
}
