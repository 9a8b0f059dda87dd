//! Delivery: every sink has a bounded queue and a worker task. The polling loop only
//! ever calls `try_send` ([`Delivery::alert`]), which never waits: when a queue is
//! full the notice is dropped for that sink, counted and logged. Workers deliver in
//! order; a webhook worker takes a token from its rate limiter before each request,
//! and retries with exponential backoff (capped) on timeouts, connection errors and
//! 5xx, and after the wait a 429 asks for (`Retry-After`, or Discord's JSON
//! `retry_after`). An endpoint that is down for a while loses nothing: past the
//! configured retries a notice is still retried while its queue has room, and given up
//! (counted as failed) only once the queue is full behind it, so that a dead endpoint
//! costs the oldest notices, never the polling loop. On shutdown the queues are closed
//! and drained until a deadline; what is left is counted as not delivered and logged.
//!
//! Webhook URLs are secret: every name, log line and error here uses the redacted
//! form, and reqwest's errors are stripped of their URL.
//!
//! This file is the fan-out: queues, workers, counts and shutdown. What a worker does
//! with a notice is in `files.rs` (the log files) and `webhook.rs` (a webhook: rate
//! limit and retries), which posts through `post.rs` (one request, its answer
//! classified) and follows the pure policy in `retry.rs`.

mod files;
mod post;
mod rate_limit;
mod retry;
mod webhook;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use anyhow::Result;
use log::{info, warn};
use serde::Serialize;
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
};

use self::{files::FileSink, webhook::WebhookSink};
use crate::{
    config::AlertingConfig,
    model::alert::{AlertEvent, AlertKind, AlertSource},
    sink::{CaptureNote, Notice, Origin, Traffic, json_log, log_file},
};

/// One sink's counts. `pending` is queued or in flight; after
/// [`Delivery::shutdown`] it is what was not delivered before the deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// `log`, `json_log`, `discord`, `slack`, `teams` or `generic`.
    pub kind: &'static str,
    /// The file, or the webhook URL redacted.
    pub target: String,
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
    pub pending: u64,
}

impl SinkStats {
    pub fn name(&self) -> String {
        format!("{} {}", self.kind, self.target)
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

struct SinkHandle {
    kind: &'static str,
    target: String,
    queue: mpsc::Sender<Arc<Notice>>,
    counters: Arc<Counters>,
    worker: JoinHandle<()>,
}

impl SinkHandle {
    fn name(&self) -> String {
        format!("{} {}", self.kind, self.target)
    }

    fn stats(&self) -> SinkStats {
        stats(self.kind, &self.target, &self.counters)
    }
}

fn stats(kind: &'static str, target: &str, c: &Counters) -> SinkStats {
    let delivered = c.delivered.load(Ordering::Relaxed);
    let failed = c.failed.load(Ordering::Relaxed);
    SinkStats {
        kind,
        target: target.to_owned(),
        delivered,
        failed,
        dropped: c.dropped.load(Ordering::Relaxed),
        pending: c
            .accepted
            .load(Ordering::Relaxed)
            .saturating_sub(delivered + failed),
    }
}

/// Reads each sink's counts: see [`Delivery::stats_source`].
#[derive(Clone, Debug, Default)]
pub struct SinkStatsSource(Vec<(&'static str, String, Arc<Counters>)>);

impl SinkStatsSource {
    pub fn stats(&self) -> Vec<SinkStats> {
        self.0
            .iter()
            .map(|(kind, target, counters)| stats(kind, target, counters))
            .collect()
    }
}

/// The sinks of one run. Create it inside the tokio runtime.
pub struct Delivery {
    origin: Arc<Origin>,
    sinks: Vec<SinkHandle>,
    flush_timeout: Duration,
}

impl Delivery {
    /// Opens the log files (an unwritable path is an error now, not at the first
    /// alert) and starts one worker per sink.
    pub fn start(config: &AlertingConfig, origin: Origin) -> Result<Self> {
        let origin = Arc::new(origin);
        let settings = &config.delivery;
        let mut sinks = Vec::new();
        let mut add = |kind: &'static str, target: String, sink: Sink| {
            let (queue, rx) = mpsc::channel(settings.queue.get() as usize);
            let counters = Arc::new(Counters::default());
            let name = format!("{kind} {target}");
            let worker = tokio::spawn(work(
                sink,
                rx,
                Arc::clone(&counters),
                Arc::clone(&origin),
                name,
            ));
            sinks.push(SinkHandle {
                kind,
                target,
                queue,
                counters,
                worker,
            });
        };
        if let Some(path) = &config.log {
            add(
                "log",
                path.display().to_string(),
                Sink::File(FileSink::open(path, log_file::line, "alert log")?),
            );
        }
        if let Some(path) = &config.json_log {
            add(
                "json_log",
                path.display().to_string(),
                Sink::File(FileSink::open(path, json_log::line, "JSON alert log")?),
            );
        }
        if !config.webhooks.is_empty() {
            let client = post::http_client(settings)?;
            for hook in &config.webhooks {
                let kind = hook.kind();
                add(
                    kind.as_str(),
                    hook.redacted(),
                    Sink::Webhook(Box::new(WebhookSink::new(hook, client.clone(), settings))),
                );
            }
        }
        let delivery = Self {
            origin,
            sinks,
            flush_timeout: settings.flush_timeout,
        };
        for sink in &delivery.sinks {
            info!("alerts go to {}", sink.name());
        }
        Ok(delivery)
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Queues an alert or an alert's end for every sink; never waits. `traffic` is
    /// what the source sent in the interval (None where not known).
    pub fn alert(&self, event: &AlertEvent, traffic: Option<Traffic>) {
        if self.sinks.is_empty() {
            return;
        }
        self.push(Notice::Event {
            event: event.clone(),
            traffic,
        });
    }

    /// Queues the note that a capture file was written for an alert: Discord gets a
    /// follow-up embed naming the file, the other sinks a short message or record.
    pub fn capture_written(&self, kind: AlertKind, source: AlertSource, path: &Path, packets: u64) {
        if self.sinks.is_empty() {
            return;
        }
        self.push(Notice::Capture(CaptureNote {
            kind,
            source,
            path: path.to_path_buf(),
            packets,
            time: SystemTime::now(),
        }));
    }

    fn push(&self, notice: Notice) {
        let notice = Arc::new(notice);
        for sink in &self.sinks {
            let lost = match sink.queue.try_send(Arc::clone(&notice)) {
                Ok(()) => {
                    sink.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(TrySendError::Full(_)) => "its queue is full",
                Err(TrySendError::Closed(_)) => "its worker has stopped",
            };
            let dropped = sink.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(
                "{}: dropped the {} {} from {}: {lost} ({dropped} dropped so far)",
                sink.name(),
                notice.type_name(),
                notice.kind(),
                notice.source()
            );
        }
    }

    /// Each sink's counts so far.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.sinks.iter().map(SinkHandle::stats).collect()
    }

    /// A handle that reads the same counts later, from another task (the metrics
    /// endpoint), without holding the `Delivery`.
    pub fn stats_source(&self) -> SinkStatsSource {
        SinkStatsSource(
            self.sinks
                .iter()
                .map(|s| (s.kind, s.target.clone(), Arc::clone(&s.counters)))
                .collect(),
        )
    }

    /// Closes the queues and lets the workers finish what is queued, for at most the
    /// flush timeout all together; then stops them. Logs what was not delivered and
    /// returns the final counts.
    pub async fn shutdown(self) -> Vec<SinkStats> {
        let deadline = tokio::time::Instant::now() + self.flush_timeout;
        let workers: Vec<_> = self
            .sinks
            .into_iter()
            .map(|sink| {
                drop(sink.queue);
                (sink.kind, sink.target, sink.counters, sink.worker)
            })
            .collect();
        let mut all = Vec::with_capacity(workers.len());
        for (kind, target, counters, mut worker) in workers {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                worker.abort();
                // Joined, not left to wind down: until its task is dropped a worker
                // on another thread can still finish a delivery and change the counts.
                let _cancelled = worker.await;
            }
            let s = stats(kind, &target, &counters);
            let counts = format!(
                "{} delivered, {} failed, {} dropped",
                s.delivered, s.failed, s.dropped
            );
            if s.pending > 0 {
                warn!(
                    "{}: {} not delivered within the {} shutdown deadline ({counts})",
                    s.name(),
                    plural(s.pending, "notice"),
                    humantime::format_duration(self.flush_timeout)
                );
            } else if s.failed > 0 || s.dropped > 0 {
                warn!("{}: {counts}", s.name());
            }
            all.push(s);
        }
        all
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

async fn work(
    mut sink: Sink,
    mut queue: mpsc::Receiver<Arc<Notice>>,
    counters: Arc<Counters>,
    origin: Arc<Origin>,
    name: String,
) {
    while let Some(notice) = queue.recv().await {
        // Full: as many notices wait as the queue holds, so the next one will be dropped.
        let backlog_full = || queue.capacity() == 0;
        match sink.deliver(&notice, &origin, &name, &backlog_full).await {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "{name}: failed to deliver the {} {} from {}: {why}",
                    notice.type_name(),
                    notice.kind(),
                    notice.source()
                );
            }
        }
    }
}

enum Sink {
    File(FileSink),
    Webhook(Box<WebhookSink>),
}

impl Sink {
    async fn deliver(
        &mut self,
        notice: &Notice,
        origin: &Origin,
        name: &str,
        backlog_full: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), String> {
        match self {
            Self::File(file) => file.write(notice, origin).await,
            Self::Webhook(hook) => hook.deliver(notice, origin, name, backlog_full).await,
        }
    }
}
