//! The monitor: a backend that counts packets (XDP in the kernel), a loop that polls
//! it, and reports of what it counted; alerts go to stdout and to the sinks (log files,
//! webhooks).
//!
//! The modules form layers, each importing only from the layers below it (and, within
//! a layer, without cycles); ARCHITECTURE.md draws the graph and `cargo xtask layers`
//! checks it.

// Model: plain data.
pub mod model;

// Configuration.
pub mod config;

// Pure stages: they decide, from data passed in and a clock; no I/O.
pub mod alert;
pub mod capture;
pub mod connections;
pub mod detect;
pub mod mitigate;
pub mod packets;
pub mod poll;
pub mod sink;
pub mod stats;

// Adapters: I/O.
pub mod backend;
pub mod capture_writer;
pub mod control;
pub mod delivery;
pub mod export;
pub mod iface;
pub mod metrics;
pub mod report;
pub mod sockets;
pub mod tui;

// Wiring.
pub mod cli;
pub mod run;
