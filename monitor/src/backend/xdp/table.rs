//! A table of `source_table`'s kind (the per-source table, the SYN-ACKs sent) mapped
//! into this process, read-only: a poll reads it in place instead of copying it out
//! entry by entry through syscalls.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use anyhow::{Context as _, Result, bail};
use aya::{Ebpf, maps::Map};
use monitor_common::{
    SourceKey,
    source_table::{
        Counts, SOURCE_TABLE_WAYS, TableEntry, read_entry, source_set_start, source_table_sets,
    },
};

use crate::model::source_list::SourceList;

/// A table of `source_table`'s kind mapped into this process, read-only. aya 0.14 does
/// not map arrays, hence the `mmap` by hand.
pub struct MappedTable<C> {
    start: NonNull<TableEntry<C>>,
    entries: usize,
    mapped_len: usize,
}

// SAFETY: the mapping is shared memory, read only through `read_entry`'s protocol;
// nothing in it is tied to a thread.
unsafe impl<C> Send for MappedTable<C> {}

impl<C: Counts> MappedTable<C> {
    pub fn map(ebpf: &Ebpf, name: &str) -> Result<Self> {
        let data = match ebpf.map(name) {
            Some(Map::Array(data)) => data,
            Some(_) => bail!("map {name} is not an array"),
            None => bail!("map {name} missing"),
        };
        let entries = data
            .info()
            .with_context(|| format!("failed to query map {name}"))?
            .max_entries() as usize;
        // SAFETY: a query without preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mapped_len = (entries * size_of::<TableEntry<C>>()).div_ceil(page) * page;
        // SAFETY: a new shared read-only mapping of the map's fd, which the kernel
        // sizes to the array rounded up to pages; unmapped on drop.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("failed to map {name} into memory"));
        }
        Ok(Self {
            start: NonNull::new(start.cast()).context("mmap returned null")?,
            entries,
            mapped_len,
        })
    }

    /// Every used entry's address and counts into `list`, emptied first, in its
    /// order (the table's), the counts of an address with more than one entry added.
    pub fn read_into(&self, list: &mut SourceList<C>, merge: impl Fn(&mut C, C)) {
        list.clear(source_table_sets(self.entries as u32));
        list.reserve(self.entries);
        self.for_each(|key, counts| list.push(key, counts));
        list.finish_nearly_ordered(merge);
    }

    /// `key`'s counts now (its entries added up), `None` when it has none.
    pub fn read_one(&self, key: &SourceKey, merge: impl Fn(&mut C, C)) -> Option<C> {
        let sets = source_table_sets(self.entries as u32);
        let start = source_set_start(key, sets) as usize;
        let mut sum: Option<C> = None;
        for i in start..(start + SOURCE_TABLE_WAYS as usize).min(self.entries) {
            // SAFETY: within the mapping; the kernel's writers follow `flush_into`.
            if let Some((k, counts)) = unsafe { read_entry(self.start.as_ptr().add(i)) }
                && k.same(key)
            {
                match &mut sum {
                    Some(sum) => merge(sum, counts),
                    None => sum = Some(counts),
                }
            }
        }
        sum
    }

    /// Calls `each` with every used entry's address and counts (an address may have
    /// more than one entry: callers add them up).
    pub fn for_each(&self, mut each: impl FnMut(SourceKey, C)) {
        for i in 0..self.entries {
            // SAFETY: within the mapping; the kernel's writers follow `flush_into`.
            if let Some((key, counts)) = unsafe { read_entry(self.start.as_ptr().add(i)) } {
                each(key, counts);
            }
        }
    }
}

impl<C> Drop for MappedTable<C> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, used by nothing else.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.mapped_len) };
    }
}
