//! The monitor's core: the plain data every part shares, the configuration, and the
//! stages that decide (detectors, alert tracking, the ban policy, capture planning,
//! connection evaluation, payloads), all pure functions of data passed in and a clock.
//! No dependency that does I/O (no async runtime, HTTP client, libpcap or aya), and no
//! I/O but reading the configuration and the list files it names at start: the
//! `monitor` crate adds the adapters (backends, delivery, the control socket, the
//! servers) and the wiring.
//!
//! The modules form layers, each importing only from the layers below it (and, within
//! a layer, without cycles); ARCHITECTURE.md draws the graph and `cargo xtask layers`
//! checks it.

// Model: plain data.
pub mod model;

// Configuration.
pub mod config;

// Pure stages: they decide, from data passed in and a clock.
pub mod alert;
pub mod capture;
pub mod connections;
pub mod detect;
pub mod mitigate;
pub mod packets;
pub mod poll;
pub mod sink;
pub mod stats;
