//! Command-line interface.

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The shortest polling interval: below it, reading the maps costs more than it tells.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Parser, Debug, Clone)]
#[command(
    name = "monitor",
    version,
    about = "Network traffic monitor and DDoS detector (XDP counters at line rate)"
)]
pub struct Cli {
    /// Interface to watch [default: the interface of the default route]
    #[arg(short, long)]
    pub iface: Option<String>,

    /// How often to poll the counters and print a line (100ms at least), e.g. 1s, 250ms
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Print one JSON object per line instead of human-readable lines
    #[arg(long)]
    pub json: bool,

    /// Stop cleanly after this long, e.g. 30s, 5m [default: run until SIGINT/SIGTERM]
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// XDP attach mode: native (driver) with a fallback to skb, or force one
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,

    /// Size of the per-source table in the kernel (sources tracked at once, LRU)
    #[arg(long, default_value_t = monitor_common::DEFAULT_MAX_SOURCES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sources: u32,

    /// How many top sources each stats line lists
    #[arg(long, default_value_t = 5)]
    pub top: usize,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpModeArg {
    /// Native (driver) mode, falling back to skb mode with a warning
    Auto,
    /// Native (driver) mode only
    Native,
    /// Generic (skb) mode only
    Skb,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 1s or 250ms: {e}"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!("`{s}` is below the 100ms minimum"));
    }
    Ok(d)
}
