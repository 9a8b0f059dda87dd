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

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use log::{debug, info, warn};
use serde::Serialize;
use serde_json::Value;
use tokio::{
    io::AsyncWriteExt as _,
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
};

use super::{
    CaptureNote, Notice, Origin, Traffic, discord, generic, json_log, log_file,
    rate_limit::TokenBucket, slack, teams, truncate,
};
use crate::{
    alert::{AlertEvent, AlertKind, AlertSource},
    config::{AlertingConfig, DeliveryConfig, WebhookConfig, WebhookKind},
};

/// The longest wait between two attempts that a 429 can ask for; past it the notice
/// fails rather than hold the queue.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);
/// The longest exponential backoff step.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
                Sink::file(path, log_file::line, "alert log")?,
            );
        }
        if let Some(path) = &config.json_log {
            add(
                "json_log",
                path.display().to_string(),
                Sink::file(path, json_log::line, "JSON alert log")?,
            );
        }
        if !config.webhooks.is_empty() {
            let client = http_client(settings)?;
            for hook in &config.webhooks {
                let kind = hook.kind();
                add(
                    kind.as_str(),
                    hook.redacted(),
                    Sink::Webhook(Box::new(Webhook::new(hook, client.clone(), settings))),
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
    File {
        path: PathBuf,
        file: tokio::fs::File,
        line: fn(&Notice, &Origin) -> String,
    },
    Webhook(Box<Webhook>),
}

impl Sink {
    fn file(path: &Path, line: fn(&Notice, &Origin) -> String, what: &str) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("failed to open the {what} {}", path.display()))?;
        Ok(Self::File {
            path: path.to_path_buf(),
            file: tokio::fs::File::from_std(file),
            line,
        })
    }

    async fn deliver(
        &mut self,
        notice: &Notice,
        origin: &Origin,
        name: &str,
        backlog_full: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), String> {
        match self {
            Self::File { path, file, line } => {
                let mut text = line(notice, origin);
                text.push('\n');
                let written = async {
                    file.write_all(text.as_bytes()).await?;
                    file.flush().await
                };
                written
                    .await
                    .map_err(|err| format!("failed to write to {}: {err}", path.display()))
            }
            Self::Webhook(hook) => hook.deliver(notice, origin, name, backlog_full).await,
        }
    }
}

fn http_client(settings: &DeliveryConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        // A webhook that redirects is misconfigured; following it could hand the
        // payload to another host.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("monitor/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("failed to set up the HTTP client for webhooks")
}

struct Webhook {
    kind: WebhookKind,
    url: reqwest::Url,
    client: reqwest::Client,
    bucket: TokenBucket,
    retries: u32,
    backoff: Duration,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Worth another try, after `after` if the server said how long.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Failed(String),
}

impl Webhook {
    fn new(config: &WebhookConfig, client: reqwest::Client, settings: &DeliveryConfig) -> Self {
        Self {
            kind: config.kind(),
            url: config.url.expose().clone(),
            client,
            bucket: TokenBucket::new(
                settings.rate_per_sec.get(),
                settings.burst.get(),
                Instant::now(),
            ),
            retries: settings.retries,
            backoff: settings.backoff,
        }
    }

    fn payload(&self, notice: &Notice, origin: &Origin) -> Value {
        match self.kind {
            WebhookKind::Discord => discord::payload(notice, origin),
            WebhookKind::Slack => slack::payload(notice, origin),
            WebhookKind::Teams => teams::payload(notice, origin),
            WebhookKind::Generic => generic::payload(notice, origin),
        }
    }

    /// Posts `notice` until it is delivered, fails for good (a 4xx other than 429), or
    /// has had its retries while `backlog_full` says the queue behind it is full.
    async fn deliver(
        &mut self,
        notice: &Notice,
        origin: &Origin,
        name: &str,
        backlog_full: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), String> {
        let body = serde_json::to_vec(&self.payload(notice, origin))
            .map_err(|err| format!("failed to encode the payload: {err}"))?;
        let mut attempt = 0u32;
        loop {
            self.bucket.take().await;
            attempt += 1;
            let (after, why) = match self.post(&body).await {
                Outcome::Delivered => return Ok(()),
                Outcome::Failed(why) => return Err(self.scrub(&why)),
                Outcome::Retry { after, why } => (after, self.scrub(&why)),
            };
            if attempt > self.retries && backlog_full() {
                return Err(format!(
                    "{why} (gave up after {}, with the queue full behind it)",
                    plural(attempt.into(), "attempt")
                ));
            }
            let wait = after.unwrap_or_else(|| backoff(self.backoff, attempt));
            if wait > MAX_RETRY_WAIT {
                return Err(format!(
                    "{why}, and the server asks to wait {} (more than {})",
                    humantime::format_duration(wait),
                    humantime::format_duration(MAX_RETRY_WAIT)
                ));
            }
            if attempt <= self.retries {
                info!(
                    "{name}: {why}; retrying in {:.1}s (attempt {} of {})",
                    wait.as_secs_f64(),
                    attempt + 1,
                    self.retries + 1
                );
            } else if attempt == self.retries + 1 {
                // Once, not per attempt: a long outage would flood the log.
                warn!(
                    "{name}: {why}; still retrying every {} at most, while its queue has room",
                    humantime::format_duration(MAX_BACKOFF)
                );
            } else {
                debug!("{name}: {why}; retrying in {:.1}s", wait.as_secs_f64());
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn post(&self, body: &[u8]) -> Outcome {
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return classify_error(err),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if response.status().is_success() {
            return Outcome::Delivered;
        }
        let body = response.bytes().await.unwrap_or_default();
        debug!(
            "webhook answered {status}: {}",
            self.scrub(&String::from_utf8_lossy(&body))
        );
        classify(status, retry_after.as_deref(), &body)
    }

    /// Whatever a message says (ours, reqwest's, the server's answer), never the
    /// URL's secret part: the URL, its path and query, and any long path segment or
    /// query value (ids and tokens) are replaced by `…`.
    fn scrub(&self, text: &str) -> String {
        let url = &self.url;
        let mut secrets: Vec<String> = vec![url.as_str().to_owned()];
        if url.path().len() > 1 {
            secrets.push(url.path().to_owned());
        }
        secrets.extend(url.query().map(str::to_owned));
        secrets.extend(
            url.path_segments()
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .chain(url.query_pairs().map(|(_, value)| value.into_owned())),
        );
        secrets
            .iter()
            .filter(|secret| secret.len() >= SECRET_MIN_LEN)
            .fold(text.to_owned(), |text, secret| {
                text.replace(secret.as_str(), "…")
            })
    }
}

/// A path segment or query value this long may be a token: never shown.
const SECRET_MIN_LEN: usize = 12;

/// The wait before attempt `attempt + 1`: `base`, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// How long a 429 asks to wait: Discord's JSON `retry_after` (seconds, fractional),
/// else the `Retry-After` header in seconds. (An HTTP-date header is not read: the
/// backoff applies then.)
pub fn retry_after(header: Option<&str>, body: &[u8]) -> Option<Duration> {
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    let from_header = header.and_then(|h| h.trim().parse::<f64>().ok());
    from_body
        .or(from_header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The outcome of an HTTP answer that is not a success.
pub fn classify(status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Outcome {
    let said = String::from_utf8_lossy(body);
    let said = said.trim();
    let why = if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!(
            "HTTP {status}: {}",
            truncate(&said.replace(['\n', '\r'], " "), 200)
        )
    };
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry {
            after: retry_after(retry_after_header, body),
            why,
        },
        500..=599 => Outcome::Retry { after: None, why },
        _ => Outcome::Failed(why),
    }
}

fn classify_error(err: reqwest::Error) -> Outcome {
    let retry = err.is_timeout() || err.is_connect() || err.is_request() || err.is_body();
    let why = error_chain(&err.without_url());
    if retry {
        Outcome::Retry { after: None, why }
    } else {
        Outcome::Failed(why)
    }
}

/// `error sending request: client error (Connect): tcp connect error: Connection
/// refused`: each cause once.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 2), Duration::from_secs(1));
        assert_eq!(backoff(base, 4), Duration::from_secs(4));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(204, None, b""), Outcome::Delivered);
        assert_eq!(
            classify(503, None, b""),
            Outcome::Retry {
                after: None,
                why: "HTTP 503".into()
            }
        );
        assert_eq!(
            classify(
                404,
                None,
                br#"{"message": "Unknown Webhook", "code": 10015}"#
            ),
            Outcome::Failed(r#"HTTP 404: {"message": "Unknown Webhook", "code": 10015}"#.into())
        );
        let Outcome::Retry { after, .. } = classify(
            429,
            Some("2"),
            br#"{"message": "You are being rate limited.", "retry_after": 0.75, "global": false}"#,
        ) else {
            panic!("a 429 is retried")
        };
        assert_eq!(after, Some(Duration::from_millis(750)));
        let Outcome::Retry { after, .. } = classify(429, Some(" 3 "), b"slow down") else {
            panic!("a 429 is retried")
        };
        assert_eq!(after, Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), b""),
            None
        );
        assert_eq!(retry_after(Some("-1"), b""), None);
    }
}
