//! The few atomic operations the per-source table needs, on a `u64` behind a raw
//! pointer (a map value the kernel or another process shares).
//!
//! Rust's BPF target declares no compare-and-swap (`atomic_cas: false`, for BPF CPU
//! v1), so `AtomicU64` there has loads and stores only. The kernel has had the BPF
//! instructions since 5.12 (CPU v3, bpf-linker's default), so on BPF the compiler's
//! intrinsics emit them directly; elsewhere this is `AtomicU64`. On BPF every ordering
//! is sequentially consistent: the instructions are full barriers.

#[cfg(not(target_arch = "bpf"))]
use core::sync::atomic::{AtomicU64, Ordering};

/// Replaces `*word` with `new` if it is `current`; whether it did (acquire ordering).
///
/// # Safety
///
/// `word` is valid, aligned, and accessed only atomically by others.
#[inline(always)]
pub unsafe fn compare_exchange(word: *mut u64, current: u64, new: u64) -> bool {
    #[cfg(target_arch = "bpf")]
    {
        use core::intrinsics::{AtomicOrdering, atomic_cxchg};
        // SAFETY: the caller's.
        unsafe {
            atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
                word, current, new,
            )
            .1
        }
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        // SAFETY: the caller's.
        unsafe { AtomicU64::from_ptr(word) }
            .compare_exchange(current, new, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}

/// Adds `value` to `*word` (release ordering).
///
/// # Safety
///
/// As for [`compare_exchange`].
#[inline(always)]
pub unsafe fn add(word: *mut u64, value: u64) {
    #[cfg(target_arch = "bpf")]
    {
        use core::intrinsics::{AtomicOrdering, atomic_xadd};
        // SAFETY: the caller's.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(word, value) };
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        // SAFETY: the caller's.
        unsafe { AtomicU64::from_ptr(word) }.fetch_add(value, Ordering::Release);
    }
}

/// `*word` (acquire ordering).
///
/// # Safety
///
/// As for [`compare_exchange`].
#[inline(always)]
pub unsafe fn load(word: *const u64) -> u64 {
    // An aligned 8-byte load is atomic on the CPUs BPF runs on; the verifier has no
    // atomic load before CPU v4.
    #[cfg(target_arch = "bpf")]
    {
        // SAFETY: the caller's.
        unsafe { core::ptr::read_volatile(word) }
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        // SAFETY: the caller's.
        unsafe { AtomicU64::from_ptr(word.cast_mut()) }.load(Ordering::Acquire)
    }
}
