//! The kernel stamps its events with `CLOCK_MONOTONIC` (what `bpf_ktime_get_ns` reads);
//! reports and pcap files want wall-clock time.

use std::time::{Duration, SystemTime};

/// `CLOCK_MONOTONIC` to wall-clock time, from one reading of both clocks: read it once
/// for a batch of kernel timestamps.
#[derive(Clone, Copy, Debug)]
pub(super) struct MonotonicToWall {
    wall: SystemTime,
    monotonic_ns: u64,
}

impl MonotonicToWall {
    pub(super) fn now() -> Self {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
        Self {
            wall: SystemTime::now(),
            monotonic_ns: now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64,
        }
    }

    /// The wall-clock time of the monotonic instant `ns`.
    pub(super) fn at(&self, ns: u64) -> SystemTime {
        if ns <= self.monotonic_ns {
            self.wall - Duration::from_nanos(self.monotonic_ns - ns)
        } else {
            self.wall + Duration::from_nanos(ns - self.monotonic_ns)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_timestamps_land_either_side_of_the_reading() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = MonotonicToWall {
            wall,
            monotonic_ns: 5_000_000_000,
        };
        assert_eq!(clock.at(5_000_000_000), wall);
        assert_eq!(clock.at(4_000_000_000), wall - Duration::from_secs(1));
        assert_eq!(clock.at(5_000_000_001), wall + Duration::from_nanos(1));
    }
}
