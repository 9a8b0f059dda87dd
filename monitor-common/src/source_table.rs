//! The per-source table: a set-associative array shared by every CPU, which userspace
//! maps into its memory (a `BPF_F_MMAPABLE` array) and reads without a syscall.
//!
//! Why not a BPF hash map: reading a full 65,536-entry LRU per-CPU hash with
//! `BPF_MAP_LOOKUP_BATCH` took 30–70 ms here (the kernel copies entry by entry, each
//! CPU's value apart), which alone missed the 50 ms poll-cycle target under a
//! random-source flood. A scan of the mapped array is a sequential read of 8 MiB.
//!
//! Only the per-CPU source cache (`SourceCache`) writes here, when a slot changes
//! hands, so the table sees one write per cache miss, not one per packet. The same
//! layout and protocol, with a `u64` for counts, serve the SYN-ACKs the host sends per
//! destination (`SynAckEntry`). Several CPUs
//! may flush into the same entry: each entry carries a sequence word that is odd while
//! a CPU writes it. Writers take it with a compare-and-swap (a short, bounded wait);
//! readers copy the entry and keep the copy only if the word was even and unchanged
//! around the copy (a seqlock).
//!
//! A source hashes to one set of `SOURCE_TABLE_WAYS` entries. A flush adds to the entry
//! holding its source, else claims a never-used entry, else replaces the least recently
//! flushed one, whose counts are then gone: as with an LRU table, the table holds the
//! most recently active `--max-sources` sources, and what it forgets starts from zero
//! if it returns (userspace then counts nothing for it in the interval where its total
//! falls: see `stats::source_delta` in the monitor). Two CPUs flushing a new source at the same instant may, rarely, each
//! claim an entry for it; readers add up every entry of a source, so nothing is
//! counted twice or lost.

use crate::{
    atomic,
    counters::{SourceCounters, SourceKey},
};

/// Entries per set. Eight keeps sets from overflowing while a table holds far fewer
/// sources than its size (a source is forgotten only when eight others share its set
/// and were flushed more recently), and a lookup reads at most eight keys.
pub const SOURCE_TABLE_WAYS: u32 = 8;

/// Times a flush tries to take its entry before it gives up (and the caller logs the
/// counts as lost). Another CPU holds an entry for a few dozen nanoseconds; two tries
/// in a row finding it held is already rare.
pub const FLUSH_ATTEMPTS: u32 = 8;

/// What an entry counts: counts that add up.
pub trait Counts: Copy {
    #[must_use]
    fn merged(self, other: Self) -> Self;
}

impl Counts for SourceCounters {
    #[inline(always)]
    fn merged(self, other: Self) -> Self {
        SourceCounters::merged(self, other)
    }
}

impl Counts for u64 {
    #[inline(always)]
    fn merged(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
}

/// One entry of a table of addresses and their counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableEntry<C> {
    /// Odd while a CPU writes the entry; 0 while it has never been used.
    pub seq: u64,
    /// `bpf_ktime_get_ns` of the last flush into it: the set's least recent is replaced.
    pub last_flush_ns: u64,
    pub key: SourceKey,
    pub counts: C,
}

/// An entry of the per-source table (128 bytes: two cache lines).
pub type SourceEntry = TableEntry<SourceCounters>;

/// An entry of the table of SYN-ACKs sent, per destination (`SYN_ACKS_SENT`), which
/// the TC egress program writes with this same protocol.
pub type SynAckEntry = TableEntry<u64>;

/// Sets in a table of `entries` entries: a power of two (so a hash picks one with a
/// mask), at least one. Entries past `sets * SOURCE_TABLE_WAYS` are never used.
pub fn source_table_sets(entries: u32) -> u64 {
    let sets = (entries / SOURCE_TABLE_WAYS).max(1);
    // The largest power of two not above `sets`.
    1u64 << sets.ilog2()
}

/// Index of the first entry of `key`'s set, in a table of `sets` sets.
#[inline(always)]
pub fn source_set_start(key: &SourceKey, sets: u64) -> u32 {
    let [lo, hi] = key.addr.0;
    // A multiplicative hash of the folded address, taking its high half: independent
    // of the source cache's slot hash, so sources that share a cache slot spread over
    // the table.
    let mixed = (lo ^ hi.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let set = (mixed >> 32) & (sets.max(1) - 1);
    (set as u32) * SOURCE_TABLE_WAYS
}

/// Adds `counts` of `key` to the table. `entry(i)` is a pointer to entry `i` (in the
/// kernel: the array map's value), `None` out of range. Returns false when every
/// attempt found the chosen entry held by another writer: the counts are lost then.
///
/// # Safety
///
/// The pointers `entry` returns are valid for reads and writes for the call; other
/// writers of those entries follow this same protocol.
#[inline(always)]
pub unsafe fn flush_into<C: Counts>(
    key: &SourceKey,
    counts: C,
    sets: u64,
    now_ns: u64,
    entry: impl Fn(u32) -> Option<*mut TableEntry<C>>,
) -> bool {
    let start = source_set_start(key, sets);
    let mut attempt = 0;
    while attempt < FLUSH_ATTEMPTS {
        attempt += 1;
        let Some((target, seen, holds_key)) = choose(key, start, &entry) else {
            return false;
        };
        // SAFETY: the caller's; the sequence word is only accessed atomically.
        let seq = unsafe { &raw mut (*target).seq };
        // Taken only if unchanged since `choose` read it (every write moves the word
        // on). The compare-and-swap is a full barrier: what is read below is current.
        // SAFETY: as above.
        if seen & 1 == 1 || !unsafe { atomic::compare_exchange(seq, seen, seen | 1) } {
            continue;
        }
        atomic::writes_after_this();
        // SAFETY: this CPU now holds the entry (its word is odd) until the release.
        let held = unsafe { &mut *target };
        // `choose` read without holding anything, so its reading is checked again:
        // the entry it found holding the source must still hold it, and an entry to
        // claim must not be taken while another holds the source or is being written
        // (perhaps with the source): that would make a second entry for it, whose
        // later replacement would take part of the source's counts away.
        let stands = if holds_key {
            held.key.same(key)
        } else {
            // SAFETY: as above.
            unsafe { set_is_free_of(key, start, target, &entry) }
        };
        if stands {
            if holds_key {
                held.counts = held.counts.merged(counts);
            } else {
                // Never used, or the least recently flushed source's, now forgotten.
                held.key = *key;
                held.counts = counts;
            }
            held.last_flush_ns = now_ns;
        }
        // Even again: one step on when written (a reader that copied meanwhile sees
        // the change and copies again), back to what it was when not (nothing
        // changed; a never-used entry stays never used). A compare-and-swap (which
        // cannot fail: this CPU holds the word) rather than an add: BPF's atomic add
        // without fetch is not ordered, its compare-and-swap is a full barrier on
        // every CPU the JIT targets.
        let release = if stands { (seen | 1) + 1 } else { seen };
        // SAFETY: as above.
        unsafe { atomic::compare_exchange(seq, seen | 1, release) };
        if stands {
            return true;
        }
    }
    false
}

/// The entry a flush of `key` goes to, with its sequence word as read and whether it
/// held `key`: the one holding `key`, else the first never used, else the least
/// recently flushed. Read without holding anything: the caller takes the entry only if
/// the word is unchanged, then checks again.
#[inline(always)]
fn choose<E>(
    key: &SourceKey,
    start: u32,
    entry: &impl Fn(u32) -> Option<*mut TableEntry<E>>,
) -> Option<(*mut TableEntry<E>, u64, bool)> {
    let mut oldest: Option<(*mut TableEntry<E>, u64, u64)> = None;
    let mut way = 0;
    while way < SOURCE_TABLE_WAYS {
        // A table smaller than a set ends early.
        let Some(candidate) = entry(start + way) else {
            break;
        };
        way += 1;
        // SAFETY: the caller's.
        let (seq, same, flushed) = unsafe {
            let seq = atomic::load(&raw const (*candidate).seq);
            let e = &*candidate;
            (seq, e.key.same(key), e.last_flush_ns)
        };
        // Entries are never emptied and a set is claimed from its first way, so past
        // a never-used entry no entry holds the source.
        if seq == 0 || same {
            return Some((candidate, seq, seq != 0));
        }
        if oldest.is_none_or(|(_, _, at)| flushed < at) {
            oldest = Some((candidate, seq, flushed));
        }
    }
    oldest.map(|(e, seq, _)| (e, seq, false))
}

/// Whether no entry of the set but `claimed` (held by the caller) holds `key` or is
/// being written.
///
/// # Safety
///
/// As for [`flush_into`].
#[inline(always)]
unsafe fn set_is_free_of<E>(
    key: &SourceKey,
    start: u32,
    claimed: *mut TableEntry<E>,
    entry: &impl Fn(u32) -> Option<*mut TableEntry<E>>,
) -> bool {
    let mut way = 0;
    while way < SOURCE_TABLE_WAYS {
        let Some(other) = entry(start + way) else {
            break;
        };
        way += 1;
        if core::ptr::eq(other, claimed) {
            continue;
        }
        // SAFETY: the caller's.
        let (seq, same) = unsafe {
            (
                atomic::load(&raw const (*other).seq),
                (*other).key.same(key),
            )
        };
        if seq & 1 == 1 || (seq != 0 && same) {
            return false;
        }
    }
    true
}

/// A consistent copy of an entry's source and counts, or `None` when it has never
/// been used. `None` too when writers kept it changing through every attempt (the
/// counts then show at the next read).
///
/// # Safety
///
/// `entry` is valid for reads; writers follow `flush_into`'s protocol.
pub unsafe fn read_entry<C: Counts>(entry: *const TableEntry<C>) -> Option<(SourceKey, C)> {
    // SAFETY: the caller's; the sequence word is only accessed atomically.
    let seq = unsafe { &raw const (*entry).seq };
    for _ in 0..64 {
        // SAFETY: as above.
        let before = unsafe { atomic::load(seq) };
        if before == 0 {
            return None;
        }
        if before & 1 == 1 {
            core::hint::spin_loop();
            continue;
        }
        // A volatile copy: another CPU may be writing it (a seqlock's reader); the
        // copy is used only if the word shows no write began or ended meanwhile.
        // SAFETY: the caller's.
        let (key, counts) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*entry).key),
                core::ptr::read_volatile(&raw const (*entry).counts),
            )
        };
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        // SAFETY: as above.
        if unsafe { atomic::load(seq) } == before {
            return Some((key, counts));
        }
    }
    None
}

#[cfg(test)]
mod tests;
