//! One webhook request: POST the JSON body with reqwest and classify the answer (or the
//! error) into an [`Outcome`] for the retry policy. Webhook URLs are secret:
//! [`Endpoint::scrub`] takes them out of every message, and reqwest's errors are
//! stripped of their URL.

use std::time::Duration;

use anyhow::{Context as _, Result};
use log::debug;
use serde_json::Value;

use super::retry::Outcome;
use crate::{config::DeliveryConfig, sink::truncate};

/// The client every webhook of a run shares.
pub(super) fn http_client(settings: &DeliveryConfig) -> Result<reqwest::Client> {
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

/// Where one webhook posts.
pub(super) struct Endpoint {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl Endpoint {
    pub(super) fn new(url: reqwest::Url, client: reqwest::Client) -> Self {
        Self { url, client }
    }

    /// One attempt.
    pub(super) async fn post(&self, body: &[u8]) -> Outcome {
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
    pub(super) fn scrub(&self, text: &str) -> String {
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

/// How long a 429 asks to wait: Discord's JSON `retry_after` (seconds, fractional),
/// else the `Retry-After` header in seconds. (An HTTP-date header is not read: the
/// backoff applies then.)
pub(super) fn retry_after(header: Option<&str>, body: &[u8]) -> Option<Duration> {
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
pub(super) fn classify(status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Outcome {
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
