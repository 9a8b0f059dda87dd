//! The polling loop: snapshot the backend every interval, report, stop on a signal or
//! at `--duration`, then report the final totals.

use std::time::Instant;

use anyhow::{Context as _, Result};
use log::warn;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{MissedTickBehavior, interval_at, sleep_until},
};

use crate::{
    backend::{Backend, Snapshot},
    cli::Cli,
    iface,
    report::{self, RunInfo},
    stats,
};

pub async fn run(cli: Cli) -> Result<()> {
    let iface = match &cli.iface {
        Some(name) => name.clone(),
        None => iface::default_route()?,
    };
    let backend = open_backend(&cli, &iface)?;
    let info = RunInfo {
        iface,
        backend: backend.name(),
        description: backend.describe(),
        interval: cli.interval,
    };
    poll(backend, &cli, &info, report::reporter(cli.json)).await
}

#[cfg(target_os = "linux")]
fn open_backend(cli: &Cli, iface: &str) -> Result<Box<dyn Backend + Send>> {
    let backend = crate::backend::xdp::XdpBackend::attach(iface, cli.xdp_mode, cli.max_sources)?;
    Ok(Box::new(backend))
}

#[cfg(not(target_os = "linux"))]
fn open_backend(_cli: &Cli, _iface: &str) -> Result<Box<dyn Backend + Send>> {
    anyhow::bail!("the XDP backend needs Linux; this system has no backend yet")
}

async fn poll(
    mut backend: Box<dyn Backend + Send>,
    cli: &Cli,
    info: &RunInfo,
    mut reporter: Box<dyn report::Reporter + Send>,
) -> Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
    let mut previous: Snapshot = backend.snapshot()?;
    let started = previous.taken;
    let deadline = cli.duration.map(|d| started + d);
    let mut ticker = interval_at((started + cli.interval).into(), cli.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    reporter.start(info);

    loop {
        tokio::select! {
            _ = ticker.tick() => match backend.snapshot() {
                Ok(current) => {
                    reporter.interval(info, &stats::interval(&previous, &current, cli.top));
                    previous = current;
                }
                // Keep going: the next poll may work, and the totals are cumulative.
                Err(err) => warn!("failed to read the counters: {err:#}"),
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = async { sleep_until(deadline.unwrap_or_else(Instant::now).into()).await },
                if deadline.is_some() => break,
        }
    }

    // Read once more so that the final totals include the last partial interval; if
    // that fails, the last good snapshot is still reported.
    let last = backend.snapshot().unwrap_or_else(|err| {
        warn!("failed to read the final counters, reporting the last good ones: {err:#}");
        previous
    });
    drop(backend); // detaches the program before we report
    reporter.finish(info, &last.global, last.taken.duration_since(started));
    Ok(())
}
