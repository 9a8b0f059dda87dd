//! Reads a whole per-CPU BPF hash map in a few syscalls with `BPF_MAP_LOOKUP_BATCH`
//! (kernel 5.6+). Written by hand because aya 0.14 has no batch operations: walking a
//! 65,536-entry table key by key costs two syscalls per entry, and under a
//! random-source flood that made a poll take longer than its interval.

use std::{
    io,
    mem::size_of,
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

/// Every entry of a per-CPU hash map: each key with one value per possible CPU.
pub fn per_cpu_entries<K: Pod, V: Pod>(map: &MapData) -> io::Result<Vec<(K, Vec<V>)>> {
    let cpus = aya::util::nr_cpus().map_err(|(_, err)| err)?;
    // The kernel lays each CPU's value out on an 8-byte stride.
    let stride = size_of::<V>().div_ceil(8) * 8;
    let mut chunk = CHUNK;
    let mut out = Vec::new();
    // Opaque position tokens (a bucket index for hash maps).
    let (mut position, mut next) = (0u64, 0u64);
    let mut started = false;
    loop {
        let mut keys = vec![0u8; chunk * size_of::<K>()];
        let mut values = vec![0u8; chunk * stride * cpus];
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
            let per_cpu = (0..cpus)
                .map(|cpu| {
                    let at = (i * cpus + cpu) * stride;
                    // SAFETY: as above.
                    unsafe { values.as_ptr().add(at).cast::<V>().read_unaligned() }
                })
                .collect();
            out.push((key, per_cpu));
        }
        if error.is_some() {
            return Ok(out);
        }
        position = next;
        started = true;
    }
}
