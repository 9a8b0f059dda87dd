//! The few atomic operations the per-source table needs, on a `u64` behind a raw
//! pointer (a map value the kernel or another process shares).
//!
//! Rust's BPF target declares no compare-and-swap (`atomic_cas: false`, for BPF CPU
//! v1), so `AtomicU64` there has loads and stores only. The kernel has had the BPF
//! instruction since 5.12 (CPU v3, bpf-linker's default), so on BPF the compiler's
//! intrinsic emits it directly; elsewhere this is `AtomicU64`. BPF's compare-and-swap
//! is fully ordered (a full barrier) on every CPU the kernel's JIT targets; an atomic
//! add whose result is unused is not, which is why releases are compare-and-swaps too.

#[cfg(not(target_arch = "bpf"))]
use core::sync::atomic::{AtomicU64, Ordering};

/// Replaces `*word` with `new` if it is `current`; whether it did (acquire and
/// release ordering: it takes and it lets go).
///
/// # Safety
///
/// `word` is valid, aligned, and accessed only atomically by others.
#[inline(always)]
pub(crate) unsafe fn compare_exchange(word: *mut u64, current: u64, new: u64) -> bool {
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
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// `*word` (acquire ordering).
///
/// # Safety
///
/// As for [`compare_exchange`].
#[inline(always)]
pub(crate) unsafe fn load(word: *const u64) -> u64 {
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

/// Orders the writes that follow after an earlier compare-and-swap, for readers that
/// copy without holding anything (a seqlock's writer, once it holds the word). BPF's
/// compare-and-swap is a full barrier already.
#[inline(always)]
pub(crate) fn writes_after_this() {
    #[cfg(not(target_arch = "bpf"))]
    core::sync::atomic::fence(Ordering::Release);
}
