//! Detection: the address lists for now; the detectors follow.

pub mod lists;

pub use lists::Lists;
