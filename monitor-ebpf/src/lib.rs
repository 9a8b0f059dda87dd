//! The XDP program is the `monitor-xdp` binary target, built for `bpfel-unknown-none`
//! by `monitor/build.rs`. This empty library only exists so that `monitor` can name
//! this crate as a build dependency and be rebuilt when it changes.
#![no_std]
