//! The webhook retry policy as a value: from the number of attempts a notice has had
//! and what the last one came to ([`Outcome`]), [`RetryPolicy::decide`] says whether it
//! is done, how long to wait before the next attempt, or why to give up. Pure: no
//! clock, no I/O; the webhook worker (`webhook.rs`) does the waiting, so every rule
//! here is tested without a server or a runtime.

use std::time::Duration;

use super::plural;

/// The longest wait between two attempts that a 429 can ask for; past it the notice
/// fails rather than hold the queue.
pub(super) const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);
/// The longest exponential backoff step.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Outcome {
    Delivered,
    /// Worth another try, after `after` if the server said how long.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Failed(String),
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RetryAction {
    /// Delivered: nothing more to do.
    Done,
    /// Wait this long, then attempt again.
    RetryAfter(Duration),
    /// Count the notice as failed.
    GiveUp(GiveUp),
}

/// Why a notice is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GiveUp {
    /// The answer says another try would fare no better (a 4xx other than 429).
    Refused,
    /// Past its retries, with the queue full behind it: the next notice would be
    /// dropped if this one held the queue any longer.
    QueueFull { attempts: u32 },
    /// The server asks to wait longer than the policy's `max_retry_wait`.
    WaitTooLong { wait: Duration, max: Duration },
}

impl GiveUp {
    /// The failure's message, from what the last attempt said (`why`).
    pub(super) fn message(&self, why: &str) -> String {
        match self {
            Self::Refused => why.to_owned(),
            Self::QueueFull { attempts } => format!(
                "{why} (gave up after {}, with the queue full behind it)",
                plural((*attempts).into(), "attempt")
            ),
            Self::WaitTooLong { wait, max } => format!(
                "{why}, and the server asks to wait {} (more than {})",
                humantime::format_duration(*wait),
                humantime::format_duration(*max)
            ),
        }
    }
}

/// When a webhook notice is tried again: after `backoff`, doubling with each attempt up
/// to `max_backoff`, or after the wait a 429 asks for (at most `max_retry_wait`).
/// `retries` is how many retries a notice has before it may be given up; it is given
/// up only when the queue behind it is full, and retried on while the queue has room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RetryPolicy {
    pub retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub max_retry_wait: Duration,
}

impl RetryPolicy {
    /// `retries` and `backoff` from the configuration, with the fixed caps
    /// [`MAX_BACKOFF`] and [`MAX_RETRY_WAIT`].
    pub(super) fn new(retries: u32, backoff: Duration) -> Self {
        Self {
            retries,
            backoff,
            max_backoff: MAX_BACKOFF,
            max_retry_wait: MAX_RETRY_WAIT,
        }
    }

    /// The decision after attempt number `attempt` (the first is 1) came to
    /// `outcome`; `backlog_full` says whether the queue behind the notice is full.
    pub(super) fn decide(
        &self,
        attempt: u32,
        outcome: &Outcome,
        backlog_full: bool,
    ) -> RetryAction {
        let after = match outcome {
            Outcome::Delivered => return RetryAction::Done,
            Outcome::Failed(_) => return RetryAction::GiveUp(GiveUp::Refused),
            Outcome::Retry { after, .. } => *after,
        };
        if attempt > self.retries && backlog_full {
            return RetryAction::GiveUp(GiveUp::QueueFull { attempts: attempt });
        }
        let wait = after.unwrap_or_else(|| self.backoff_after(attempt));
        if wait > self.max_retry_wait {
            return RetryAction::GiveUp(GiveUp::WaitTooLong {
                wait,
                max: self.max_retry_wait,
            });
        }
        RetryAction::RetryAfter(wait)
    }

    /// The wait before attempt `attempt + 1`: the configured backoff, doubling, at most
    /// `max_backoff`.
    pub(super) fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(500);
        let backoff = |attempt| RetryPolicy::new(0, base).backoff_after(attempt);
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(2, Duration::from_millis(100))
    }

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            after,
            why: "HTTP 503".into(),
        }
    }

    #[test]
    fn delivered_is_done_and_a_refusal_is_given_up_at_once() {
        for attempt in [1, 2, 3, 50] {
            for full in [false, true] {
                assert_eq!(
                    policy().decide(attempt, &Outcome::Delivered, full),
                    RetryAction::Done
                );
                assert_eq!(
                    policy().decide(attempt, &Outcome::Failed("HTTP 404".into()), full),
                    RetryAction::GiveUp(GiveUp::Refused)
                );
            }
        }
    }

    #[test]
    fn retries_back_off_doubling_to_the_cap() {
        let waits: Vec<_> = (1..=12)
            .map(|attempt| policy().decide(attempt, &retry(None), false))
            .collect();
        let ms = |ms| RetryAction::RetryAfter(Duration::from_millis(ms));
        assert_eq!(
            waits,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1_600),
                ms(3_200),
                ms(6_400),
                ms(12_800),
                ms(25_600),
                ms(51_200),
                ms(60_000),
                ms(60_000),
            ]
        );
        assert_eq!(
            policy().decide(u32::MAX, &retry(None), false),
            RetryAction::RetryAfter(MAX_BACKOFF)
        );
    }

    #[test]
    fn the_wait_a_server_asks_for_replaces_the_backoff() {
        let asked = Duration::from_millis(750);
        assert_eq!(
            policy().decide(1, &retry(Some(asked)), false),
            RetryAction::RetryAfter(asked)
        );
        // Even past the backoff cap, up to the longest wait allowed.
        assert_eq!(
            policy().decide(1, &retry(Some(MAX_RETRY_WAIT)), false),
            RetryAction::RetryAfter(MAX_RETRY_WAIT)
        );
        let too_long = MAX_RETRY_WAIT + Duration::from_millis(1);
        let action = policy().decide(1, &retry(Some(too_long)), false);
        assert_eq!(
            action,
            RetryAction::GiveUp(GiveUp::WaitTooLong {
                wait: too_long,
                max: MAX_RETRY_WAIT
            })
        );
        let RetryAction::GiveUp(why) = action else {
            unreachable!()
        };
        assert_eq!(
            why.message("HTTP 429"),
            "HTTP 429, and the server asks to wait 5m 1ms (more than 5m)"
        );
    }

    #[test]
    fn past_its_retries_a_notice_is_given_up_only_with_the_queue_full() {
        // Within the retries a full queue changes nothing.
        for attempt in 1..=2 {
            assert!(matches!(
                policy().decide(attempt, &retry(None), true),
                RetryAction::RetryAfter(_)
            ));
        }
        // Past them: retried on while the queue has room...
        assert_eq!(
            policy().decide(3, &retry(None), false),
            RetryAction::RetryAfter(Duration::from_millis(400))
        );
        // ...and given up once it is full, before any wait is considered.
        let action = policy().decide(3, &retry(Some(MAX_RETRY_WAIT * 2)), true);
        assert_eq!(
            action,
            RetryAction::GiveUp(GiveUp::QueueFull { attempts: 3 })
        );
        let RetryAction::GiveUp(why) = action else {
            unreachable!()
        };
        assert_eq!(
            why.message("HTTP 502"),
            "HTTP 502 (gave up after 3 attempts, with the queue full behind it)"
        );
        assert_eq!(GiveUp::Refused.message("HTTP 404"), "HTTP 404");
    }

    #[test]
    fn no_retries_means_the_first_failure_may_be_given_up() {
        let policy = RetryPolicy::new(0, Duration::from_secs(1));
        assert_eq!(
            policy.decide(1, &retry(None), true),
            RetryAction::GiveUp(GiveUp::QueueFull { attempts: 1 })
        );
        assert_eq!(
            policy.decide(1, &retry(None), false),
            RetryAction::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            GiveUp::QueueFull { attempts: 1 }.message("timed out"),
            "timed out (gave up after 1 attempt, with the queue full behind it)"
        );
    }
}
