//! The polling loop: snapshot the backend every interval, report the stats, run the
//! detectors and report their alerts, on stdout and to the sinks (log files, webhooks:
//! queued, never waited for); stop on a signal or at `--duration`, then report the
//! alerts still open and the final totals, and give the sinks a few seconds to deliver
//! what is queued.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::{
    sync::Notify,
    time::{MissedTickBehavior, interval_at, sleep_until},
};

mod captures;
mod mitigation;
mod packet_log;
mod pipeline;
mod signals;
mod tasks;

use self::{
    mitigation::Mitigation,
    pipeline::{Inputs, Parts, Pipeline},
    signals::StopSignals,
    tasks::Tasks,
};
use crate::{
    backend::select::PacketView,
    cli::Cli,
    config::Config,
    delivery::Delivery,
    detect::{Detector, Lists},
    iface, report,
    report::RunInfo,
    sink::Origin,
    sockets::{ConnectionScanner, next_scan},
};

pub async fn run(cli: Cli) -> Result<()> {
    if cli.tui {
        crate::tui::check_terminal()?;
    }
    let config = cli.config().context("invalid configuration")?;
    let lists = Lists::load(&config.lists).context("invalid address list")?;
    let iface = match &config.capture.iface {
        Some(name) => name.clone(),
        None => iface::default_route()?,
    };
    // The log files are opened before the program is attached: a wrong path stops the
    // monitor before it touches the interface.
    let origin = Origin {
        server_name: config
            .alerting
            .server_name
            .clone()
            .unwrap_or_else(crate::host::hostname),
        iface: iface.clone(),
    };
    let delivery =
        Delivery::start(&config.alerting, origin).context("failed to set up alert delivery")?;
    // The export file and the metrics port too: a wrong path or a taken port stops the
    // monitor before it attaches.
    let mut extra: Vec<Box<dyn report::Reporter + Send>> = Vec::new();
    if let Some(path) = &config.export.path {
        extra.push(Box::new(crate::export::Exporter::open(path)?));
    }
    let mut tasks = Tasks::default();
    if let Some(addr) = config.metrics.listen {
        let metrics = crate::metrics::Metrics::new(Some(delivery.stats_source()));
        let mut server = crate::metrics::server::MetricsServer::bind(addr, metrics.clone()).await?;
        extra.push(Box::new(metrics));
        if let Some(task) = server.take_task() {
            tasks.own("the metrics server", task);
        }
    }
    let view = PacketView {
        filter: cli.filter.clone(),
        packet_log_rate: cli.packets.then_some(cli.packets_rate),
    };
    let backend = crate::backend::select::open(&view, &config, &lists, &iface)?;
    if let Some(filter) = &cli.filter {
        log::info!("counting only packets that match `{filter}`");
    }
    let mitigation = Mitigation::start(&config, &lists, &iface, backend.as_ref())?;
    let info = RunInfo {
        iface: iface.clone(),
        backend: backend.name(),
        description: backend.describe(),
        interval: config.capture.interval,
        mitigation: config.mitigate.mode,
    };
    let detector = Detector::new(&config, lists, iface);
    // Notified when the dashboard's operator quits.
    let quit = Arc::new(Notify::new());
    let mut reporter: Box<dyn report::Reporter + Send> = if cli.tui {
        let filter = cli.filter.as_ref().map(ToString::to_string);
        Box::new(crate::tui::start(
            filter,
            config.alerting.color,
            quit.clone(),
        )?)
    } else {
        report::reporter(cli.json, config.alerting.color)
    };
    if !extra.is_empty() {
        extra.insert(0, reporter);
        reporter = Box::new(report::tee::Tee(extra));
    }
    // From here on, whatever happens, the sinks get their flush and the tasks their end.
    let polled = async {
        // Before the first snapshot, as the loop's other inputs: a failure here stops
        // the monitor before it reports its start.
        let stop = StopSignals::watch()?;
        let scanner = if config.connections.enabled {
            Some(
                ConnectionScanner::start(config.connections.interval)
                    .context("failed to start the connection monitor")?,
            )
        } else {
            None
        };
        let (pipeline, inputs) = Pipeline::start(Parts {
            backend,
            config: &config,
            info,
            detector,
            reporter,
            delivery: &delivery,
            mitigation,
            packet_log_rate: view.packet_log_rate,
        })?;
        let events = Events {
            inputs,
            scanner,
            stop,
            quit: &quit,
        };
        event_loop(pipeline, events, &config, cli.duration, &mut tasks).await;
        anyhow::Ok(())
    }
    .await;
    // One deadline for what is left running: the sinks flush (within their own timeout)
    // while the servers are cancelled and the backend's tasks finish.
    let deadline = tokio::time::Instant::now() + tasks::SHUTDOWN_DEADLINE;
    tokio::join!(delivery.shutdown(), tasks.shutdown(deadline));
    polled
}

/// What the loop waits on besides its ticks.
struct Events<'a> {
    inputs: Inputs,
    scanner: Option<ConnectionScanner>,
    stop: StopSignals,
    /// Notified when the dashboard's operator quits.
    quit: &'a Notify,
}

/// Waits for the next event and hands it to the pipeline, until a signal, the
/// dashboard's quit or `--duration`; then ends the pipeline.
async fn event_loop(
    mut pipeline: Pipeline<'_>,
    events: Events<'_>,
    config: &Config,
    duration: Option<Duration>,
    tasks: &mut Tasks,
) {
    let Events {
        mut inputs,
        mut scanner,
        mut stop,
        quit,
    } = events;
    let interval = config.capture.interval;
    let started = pipeline.started();
    let deadline = duration.map(|d| started + d);
    let mut ticker = interval_at((started + interval).into(), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // In this order: a tick due at the deadline is still reported.
            biased;
            _ = ticker.tick() => pipeline.on_tick(),
            Some(record) = async { inputs.packets.as_mut()?.recv().await },
                if inputs.packets.is_some() => pipeline.on_packet(&record),
            () = quit.notified() => break,
            scan = next_scan(&mut scanner) => pipeline.on_scan(scan),
            request = async {
                match &mut inputs.control {
                    Some(control) => control.next().await,
                    None => std::future::pending().await,
                }
            } => pipeline.on_request(request),
            () = stop.received() => break,
            () = async { sleep_until(deadline.unwrap_or_else(Instant::now).into()).await },
                if deadline.is_some() => break,
        }
    }
    pipeline.finish(inputs, tasks).await;
    if let Some(scanner) = scanner {
        tasks.own_stopping("the connection scanner", [scanner.shutdown()]);
    }
}
