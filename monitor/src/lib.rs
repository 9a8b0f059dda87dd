//! The monitor: a backend that counts packets (XDP in the kernel), a loop that polls
//! it, and reports of what it counted; alerts go to stdout and to the sinks (log files,
//! webhooks).

pub mod alert;
pub mod backend;
pub mod capture;
pub mod cli;
pub mod config;
pub mod connections;
pub mod detect;
pub mod export;
pub mod filter;
pub mod iface;
pub mod metrics;
pub mod mitigate;
pub mod packets;
pub mod poll;
pub mod report;
pub mod run;
pub mod sink;
pub mod stats;
pub mod tui;
