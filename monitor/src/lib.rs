//! The monitor: a backend that counts packets (XDP in the kernel), a loop that polls
//! it, and reports of what it counted; alerts go to stdout and to the sinks (log files,
//! webhooks).
//!
//! The modules form layers, each importing only from the layers below it (and, within
//! a layer, without cycles): the lower three in `monitor-core`, the adapters and the
//! wiring here. ARCHITECTURE.md draws the graph and `cargo xtask layers` checks it.

// The model, the configuration and the pure stages live in `monitor-core`, where the
// compiler keeps I/O out of them; they are reached here at the same paths.
pub use monitor_core::{
    alert, capture, config, connections, detect, mitigate, model, packets, poll, sink, stats,
};

// Adapters: I/O.
pub mod backend;
pub mod capture_writer;
pub mod control;
pub mod delivery;
pub mod export;
pub mod host;
pub mod iface;
pub mod metrics;
pub mod report;
pub mod sockets;
pub mod tui;

// Wiring.
pub mod cli;
pub mod run;
