//! Sizes of the kernel program's maps that userspace relies on: the XDP backend
//! resizes maps at load time from these, the libpcap backend keeps tables of the same
//! sizes (so a snapshot means the same on both), and the capture planner never arms
//! more captures than the kernel can follow. One home, so the two sides cannot drift.
//! Sizes only the kernel cares about (its ring buffers) stay beside their maps.

/// Entries in the per-source table (`SOURCE_TABLE`, and `SYN_ACKS_SENT` of the same
/// shape) unless `--max-sources` says otherwise.
pub const DEFAULT_MAX_SOURCES: u32 = 65_536;

/// Room in the blocklist trie (BLOCKLIST) at the least. An LPM trie allocates per
/// entry, so unused room costs nothing; userspace gives a longer list room for all
/// of it.
pub const MIN_BLOCKLIST_ENTRIES: u32 = 65_536;

/// Blocklisted destinations followed at once (`BLOCKLISTED_DESTINATIONS`), least
/// recently seen evicted.
pub const MAX_LISTED_DESTINATIONS: u32 = 4_096;

/// Flows whose payload is followed at once (FLOWS), least recently seen evicted.
pub const MAX_FLOWS: u32 = 16_384;

/// Captures the kernel can follow at once (`CAPTURE_TARGETS`).
pub const MAX_CAPTURE_TARGETS: u32 = 64;

/// Room in BANS when the loader is not given a ban cap (the object as compiled, and
/// `load_object`); the monitor itself sizes it to `mitigate.max_bans`.
pub const DEFAULT_MAX_BANS: u32 = 1_024;

/// Sources whose drops are counted one by one (`DROPPED_SOURCES`), at the least: the
/// least recently dropped is evicted, and the host-wide total counts every drop.
/// Userspace makes room for every ban when the ban cap is higher.
pub const MIN_DROPPED_SOURCES: u32 = 4_096;
