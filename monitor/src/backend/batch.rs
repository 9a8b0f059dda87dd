//! Reads a whole per-CPU BPF hash map in a few syscalls with `BPF_MAP_LOOKUP_BATCH`
//! (kernel 5.6+): the tallies of dropped sources and of blocklisted destinations,
//! read every poll. Written by hand because aya 0.14 has no batch operations, and key
//! by key costs two syscalls per entry. (The per-source tables are mapped arrays
//! instead, `source_table`: even batched, a full 65,536-entry hash map took 30-70 ms.)

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{Pod, maps::MapData};

/// `BPF_MAP_LOOKUP_BATCH` in `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per syscall.
const CHUNK: usize = 8_192;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `each` with every entry of a per-CPU hash map: its key and one value per
/// possible CPU. Nothing per entry is allocated (the buffers are reused from batch to
/// batch).
pub(super) fn for_each_per_cpu_entry<K: Pod, V: Pod>(
    map: &MapData,
    mut each: impl FnMut(K, &[V]),
) -> io::Result<()> {
    let cpus = aya::util::nr_cpus().map_err(|(_, err)| err)?;
    // The kernel lays each CPU's value out on an 8-byte stride.
    let stride = size_of::<V>().div_ceil(8) * 8;
    let mut chunk = CHUNK;
    // Opaque position tokens (a bucket index for hash maps).
    let (mut position, mut next) = (0u64, 0u64);
    let mut started = false;
    // Allocated once per read (grown only on ENOSPC), not once per batch.
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut per_cpu: Vec<V> = Vec::with_capacity(cpus);
    loop {
        keys.resize(chunk * size_of::<K>(), 0u8);
        values.resize(chunk * stride * cpus, 0u8);
        let mut attr = BatchAttr {
            in_batch: if started {
                (&raw const position) as u64
            } else {
                0
            },
            out_batch: (&raw mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers sized for `count` keys and values, which
        // live until the call returns.
        let result = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let error = (result < 0).then(io::Error::last_os_error);
        match error.as_ref().and_then(io::Error::raw_os_error) {
            // A bucket holds more entries than fit: ask for more at once.
            Some(libc::ENOSPC) => {
                chunk *= 2;
                continue;
            }
            // ENOENT: this was the last batch (possibly empty).
            None | Some(libc::ENOENT) => {}
            Some(_) => return Err(error.unwrap_or_else(io::Error::last_os_error)),
        }
        for i in 0..attr.count as usize {
            // SAFETY: the kernel filled `count` keys and values of these sizes; Pod
            // types accept any bytes.
            let key: K = unsafe {
                keys.as_ptr()
                    .add(i * size_of::<K>())
                    .cast::<K>()
                    .read_unaligned()
            };
            per_cpu.clear();
            per_cpu.extend((0..cpus).map(|cpu| {
                let at = (i * cpus + cpu) * stride;
                // SAFETY: as above.
                unsafe { values.as_ptr().add(at).cast::<V>().read_unaligned() }
            }));
            each(key, &per_cpu);
        }
        if error.is_some() {
            return Ok(());
        }
        position = next;
        started = true;
    }
}
