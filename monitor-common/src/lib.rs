//! What the kernel program and userspace agree on: the map layouts and sizes, and the
//! packet decoding rules. `no_std` so the XDP program can use it; the same code decodes
//! frames for the pcap backend and is unit-tested on the host.
#![no_std]
// The BPF target has no compare-and-swap in `core::sync::atomic` (see `atomic`).
#![cfg_attr(
    target_arch = "bpf",
    feature(core_intrinsics),
    allow(
        internal_features,
        reason = "`atomic_cxchg` is the BPF target's only compare-and-swap"
    )
)]
#![expect(
    clippy::inline_always,
    reason = "the XDP program runs this code: the verifier needs it inlined into the program"
)]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod atomic;
pub mod counters;
pub mod decode;
pub mod frame;
pub mod limits;
pub mod source_table;
pub mod view;

#[cfg(any(test, feature = "std"))]
pub mod builder;

pub use counters::{GlobalCounters, SourceCache, SourceCounters, SourceKey, SourceSlot};
pub use decode::{Addr, Class, Family, PacketInfo, decode};
pub use frame::Frame;
pub use limits::DEFAULT_MAX_SOURCES;

/// Names of the maps and programs in the compiled object; userspace looks them up by
/// these, so they live here next to the types they hold.
pub mod names {
    pub const GLOBAL_COUNTERS: &str = "GLOBAL_COUNTERS";
    pub const SOURCE_COUNTERS: &str = "SOURCE_COUNTERS";
    pub const SOURCE_CACHE: &str = "SOURCE_CACHE";
    /// The per-source table (`source_table`), a `BPF_F_MMAPABLE` array of `SourceEntry`.
    pub const SOURCE_TABLE: &str = "SOURCE_TABLE";
    pub const MONITOR_PROGRAM: &str = "monitor";
    /// A program that only returns `XDP_PASS`: the baseline for cost-per-packet benchmarks.
    pub const PASS_PROGRAM: &str = "pass_only";
    /// TC egress classifier counting the SYN-ACKs the host sends.
    pub const EGRESS_PROGRAM: &str = "egress";
    pub const SYN_ACKS_SENT: &str = "SYN_ACKS_SENT";
    pub const CAPTURE_TARGETS: &str = "CAPTURE_TARGETS";
    pub const CAPTURED: &str = "CAPTURED";
    /// Banned sources (`BanEntry` by `SourceKey`).
    pub const BANS: &str = "BANS";
    /// Frames dropped (or, in dry-run, that would have been) per source: a `Tally`.
    pub const DROPPED_SOURCES: &str = "DROPPED_SOURCES";
    pub const BLOCKLIST: &str = "BLOCKLIST";
    pub const PACKET_LOG: &str = "PACKET_LOG";
    pub const PACKET_LOG_STATE: &str = "PACKET_LOG_STATE";
    /// What userspace tells the program (`Settings`).
    pub const SETTINGS: &str = "SETTINGS";
    /// Traffic to blocklisted destinations, per destination.
    pub const BLOCKLISTED_DESTINATIONS: &str = "BLOCKLISTED_DESTINATIONS";
    /// Per-flow payload counters, for large downloads.
    pub const FLOWS: &str = "FLOWS";
    /// The ring of flows that reached the large-download threshold.
    pub const LARGE_FLOWS: &str = "LARGE_FLOWS";
}
