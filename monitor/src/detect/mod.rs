//! The detectors, as pure functions of one interval's counters (no clock, no I/O).

pub mod download;
pub mod flood;
pub mod lists;
pub mod scan;
pub mod spike;

pub use lists::Lists;
