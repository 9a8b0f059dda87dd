//! A webhook sink: encodes a notice with its kind's payload builder, then attempts it
//! until the [`RetryPolicy`] says it is done or given up, taking a token from the
//! rate limiter before each attempt and sleeping the policy's wait after each one
//! worth retrying.

use std::time::Instant;

use log::{debug, info, warn};
use serde_json::Value;

use super::{
    post::Endpoint,
    rate_limit::TokenBucket,
    retry::{Outcome, RetryAction, RetryPolicy},
};
use crate::{
    config::{DeliveryConfig, WebhookConfig, WebhookKind},
    sink::{Notice, Origin, discord, generic, slack, teams},
};

pub(super) struct WebhookSink {
    kind: WebhookKind,
    endpoint: Endpoint,
    bucket: TokenBucket,
    policy: RetryPolicy,
}

impl WebhookSink {
    pub(super) fn new(
        config: &WebhookConfig,
        client: reqwest::Client,
        settings: &DeliveryConfig,
    ) -> Self {
        Self {
            kind: config.kind(),
            endpoint: Endpoint::new(config.url.expose().clone(), client),
            bucket: TokenBucket::new(
                settings.rate_per_sec.get(),
                settings.burst.get(),
                Instant::now(),
            ),
            policy: RetryPolicy::new(settings.retries, settings.backoff),
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
    pub(super) async fn deliver(
        &mut self,
        notice: &Notice,
        origin: &Origin,
        name: &str,
        backlog_full: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), String> {
        let body = serde_json::to_vec(&self.payload(notice, origin))
            .map_err(|err| format!("failed to encode the payload: {err}"))?;
        let endpoint = &self.endpoint;
        attempt_until_settled(
            &self.policy,
            &mut self.bucket,
            name,
            backlog_full,
            |text| endpoint.scrub(text),
            || endpoint.post(&body),
        )
        .await
    }
}

/// Runs `attempt` until `policy` settles it; `scrub` takes the URL's secret out of
/// what an attempt said before it is logged or returned. Apart from the HTTP request,
/// this is the whole of a webhook worker's timing, so a paused clock tests it.
async fn attempt_until_settled<F: Future<Output = Outcome>>(
    policy: &RetryPolicy,
    bucket: &mut TokenBucket,
    name: &str,
    backlog_full: &(dyn Fn() -> bool + Sync),
    scrub: impl Fn(&str) -> String,
    mut attempt: impl FnMut() -> F,
) -> Result<(), String> {
    let mut attempts = 0u32;
    loop {
        bucket.take().await;
        attempts += 1;
        let outcome = attempt().await;
        let why = match &outcome {
            Outcome::Delivered => String::new(),
            Outcome::Retry { why, .. } | Outcome::Failed(why) => scrub(why),
        };
        let wait = match policy.decide(attempts, &outcome, backlog_full()) {
            RetryAction::Done => return Ok(()),
            RetryAction::GiveUp(reason) => return Err(reason.message(&why)),
            RetryAction::RetryAfter(wait) => wait,
        };
        if attempts <= policy.retries {
            info!(
                "{name}: {why}; retrying in {:.1}s (attempt {} of {})",
                wait.as_secs_f64(),
                attempts + 1,
                policy.retries + 1
            );
        } else if attempts == policy.retries + 1 {
            // Once, not per attempt: a long outage would flood the log.
            warn!(
                "{name}: {why}; still retrying every {} at most, while its queue has room",
                humantime::format_duration(policy.max_backoff)
            );
        } else {
            debug!("{name}: {why}; retrying in {:.1}s", wait.as_secs_f64());
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::{future::ready, time::Duration};

    use super::*;
    use crate::delivery::retry::{MAX_BACKOFF, MAX_RETRY_WAIT};

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            after,
            why: "HTTP 503 from /hook/s3cr3t".into(),
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Plays `script` through the worker's loop on tokio's paused clock: the result,
    /// and the time between each two attempts.
    async fn play(
        policy: RetryPolicy,
        backlog_full: bool,
        script: Vec<Outcome>,
    ) -> (Result<(), String>, Vec<Duration>, Duration) {
        // The limiter reads the real clock, which a paused runtime does not move: a
        // burst as big as the script keeps it from ever waiting.
        let burst = u32::try_from(script.len()).unwrap();
        let mut bucket = TokenBucket::new(1.0, burst, Instant::now());
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        let mut script = script.into_iter();
        let result = attempt_until_settled(
            &policy,
            &mut bucket,
            "generic http://127.0.0.1/…",
            &|| backlog_full,
            |text| text.replace("s3cr3t", "…"),
            || {
                at.push(start.elapsed());
                ready(script.next().expect("no attempt past the script"))
            },
        )
        .await;
        assert_eq!(script.next(), None, "every scripted attempt made");
        let gaps = at
            .windows(2)
            .map(|w| w[1].checked_sub(w[0]).unwrap())
            .collect();
        (result, gaps, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_between_attempts_are_the_backoff_or_the_wait_asked_for() {
        let policy = RetryPolicy::new(2, ms(100));
        let (result, gaps, total) = play(
            policy,
            false,
            vec![
                retry(None),
                retry(None),
                retry(Some(ms(750))),
                // Past the 2 retries, with room in the queue: retried on, backing off.
                retry(None),
                retry(None),
                Outcome::Delivered,
            ],
        )
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(gaps, [ms(100), ms(200), ms(750), ms(800), ms(1_600)]);
        // Nothing waited after the delivery.
        assert_eq!(total, ms(3_450));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_outage_backs_off_to_the_cap() {
        let policy = RetryPolicy::new(4, Duration::from_secs(1));
        let mut script = vec![retry(None); 9];
        script.push(Outcome::Delivered);
        let (result, gaps, _) = play(policy, false, script).await;
        assert_eq!(result, Ok(()));
        let secs = Duration::from_secs;
        assert_eq!(
            gaps,
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(32),
                MAX_BACKOFF,
                MAX_BACKOFF,
                MAX_BACKOFF
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_the_queue_full_the_last_retry_is_the_last_attempt() {
        let policy = RetryPolicy::new(2, ms(100));
        let (result, gaps, total) = play(policy, true, vec![retry(None); 3]).await;
        assert_eq!(
            result,
            Err(
                "HTTP 503 from /hook/… (gave up after 3 attempts, with the queue full behind it)"
                    .into()
            )
        );
        assert_eq!(gaps, [ms(100), ms(200)]);
        assert_eq!(total, ms(300), "no wait after giving up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_or_a_wait_too_long_ends_at_once() {
        let policy = RetryPolicy::new(2, ms(100));
        let refused = Outcome::Failed("HTTP 404 from /hook/s3cr3t".into());
        let (result, gaps, total) = play(policy, false, vec![refused]).await;
        assert_eq!(result, Err("HTTP 404 from /hook/…".into()));
        assert_eq!((gaps.len(), total), (0, Duration::ZERO));

        let too_long = MAX_RETRY_WAIT + Duration::from_secs(1);
        let (result, gaps, total) = play(policy, false, vec![retry(Some(too_long))]).await;
        assert_eq!(
            result,
            Err("HTTP 503 from /hook/…, and the server asks to wait 5m 1s (more than 5m)".into())
        );
        assert_eq!((gaps.len(), total), (0, Duration::ZERO));
    }
}
