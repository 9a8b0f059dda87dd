//! A webhook: its URL (which embeds a secret token, so it is never shown whole), its
//! kind (inferred from the URL or set explicitly), and the configuration entry that
//! names both.
//!
//! In a file: `webhooks = ["https://discord.com/api/webhooks/ID/TOKEN"]`, or a table
//! `{ url = "https://alerts.example/hook", kind = "generic" }`. On the command line:
//! `--webhook URL` or `--webhook KIND=URL`.

use std::{fmt, str::FromStr};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer},
};
use url::Url;

/// What a webhook endpoint expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// A rich embed (`{"embeds":[...]}`)
    Discord,
    /// Text and Block Kit blocks (`{"text":...,"blocks":[...]}`)
    Slack,
    /// An Adaptive Card in a message (Teams incoming webhooks and Workflows)
    Teams,
    /// The alert's JSON record, as the JSON log writes it
    Generic,
}

impl WebhookKind {
    pub const ALL: [Self; 4] = [Self::Discord, Self::Slack, Self::Teams, Self::Generic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discord => "discord",
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Generic => "generic",
        }
    }

    /// The kind a URL's host says: discord.com/api/webhooks (or discordapp.com) is
    /// Discord, hooks.slack.com is Slack, *.webhook.office.com and outlook.office.com
    /// are Teams; anything else gets the generic JSON POST.
    pub fn infer(url: &Url) -> Self {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if (under("discord.com") || under("discordapp.com"))
            && url.path().starts_with("/api/webhooks/")
        {
            Self::Discord
        } else if host == "hooks.slack.com" {
            Self::Slack
        } else if host.ends_with(".webhook.office.com") || host == "outlook.office.com" {
            Self::Teams
        } else {
            Self::Generic
        }
    }

    /// The leading path segments that are the same in every URL of this kind, and so
    /// can be shown; what follows them (ids, tokens) is not.
    fn public_path(self) -> &'static [&'static str] {
        match self {
            Self::Discord => &["api", "webhooks"],
            Self::Slack => &["services"],
            Self::Teams => &["webhookb2"],
            Self::Generic => &[],
        }
    }
}

impl fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebhookKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown webhook kind `{s}`: discord, slack, teams or generic"))
    }
}

/// A webhook URL. It carries a secret (Discord's and Slack's tokens are in the path),
/// so `Debug`, `Display` and `Serialize` all show it redacted
/// (`https://discord.com/api/webhooks/…`); only [`WebhookUrl::expose`] gives it whole,
/// to the HTTP client.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// The whole URL, secret included: for the HTTP request and nothing else.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// Scheme, host and port, then the kind's public path segments and `…`; never
    /// user info, the rest of the path, the query or the fragment.
    pub fn redacted(&self, kind: WebhookKind) -> String {
        let url = &self.0;
        let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        if let Some(port) = url.port() {
            shown.push_str(&format!(":{port}"));
        }
        let mut segments = url.path_segments().into_iter().flatten();
        for public in kind.public_path() {
            match segments.next() {
                Some(segment) if segment.eq_ignore_ascii_case(public) => {
                    shown.push('/');
                    shown.push_str(segment);
                }
                _ => break,
            }
        }
        shown.push_str("/…");
        shown
    }

    pub fn kind(&self) -> WebhookKind {
        WebhookKind::infer(&self.0)
    }
}

/// Text that was meant to be a webhook URL, for an error message: scheme and host at
/// most, never the rest.
pub fn redact_text(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            format!("{scheme}://{host}/…")
        }
        _ => "…".to_owned(),
    }
}

impl FromStr for WebhookUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{}` is not a webhook URL: {why}", redact_text(s));
        let url = Url::parse(s.trim()).map_err(|err| bad(&err.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("there is no host"));
        }
        Ok(Self(url))
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted(self.kind()))
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted(self.kind()))
    }
}

/// One configured webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: WebhookUrl,
    /// None: inferred from the URL.
    pub kind: Option<WebhookKind>,
}

impl WebhookConfig {
    /// The explicit kind, or the one the URL says.
    pub fn kind(&self) -> WebhookKind {
        self.kind.unwrap_or_else(|| self.url.kind())
    }

    /// The URL as it may be shown, e.g. `https://hooks.slack.com/services/…`.
    pub fn redacted(&self) -> String {
        self.url.redacted(self.kind())
    }
}

/// `URL` or `KIND=URL` (as `--webhook` takes it).
impl FromStr for WebhookConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((head, rest)) = s.split_once('=')
            && !head.contains(['/', ':', '?'])
        {
            let kind = head.parse()?;
            return Ok(Self {
                url: rest.parse()?,
                kind: Some(kind),
            });
        }
        Ok(Self {
            url: s.parse()?,
            kind: None,
        })
    }
}

/// Printed (`--print-config`) as a table with the URL redacted and the kind in effect.
impl Serialize for WebhookConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut table = serializer.serialize_struct("WebhookConfig", 2)?;
        table.serialize_field("url", &self.redacted())?;
        table.serialize_field("kind", &self.kind())?;
        table.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookTable {
    url: String,
    kind: Option<WebhookKind>,
}

struct WebhookVisitor;

impl<'de> Visitor<'de> for WebhookVisitor {
    type Value = WebhookConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a webhook URL, or a table with `url` and optionally `kind`")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<WebhookConfig, E> {
        Ok(WebhookConfig {
            url: s.parse().map_err(E::custom)?,
            kind: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WebhookConfig, A::Error> {
        let table = WebhookTable::deserialize(MapAccessDeserializer::new(map))?;
        Ok(WebhookConfig {
            url: table.url.parse().map_err(de::Error::custom)?,
            kind: table.kind,
        })
    }
}

impl<'de> Deserialize<'de> for WebhookConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WebhookVisitor)
    }
}

/// `alerting.webhooks`: a list, or one entry alone (predecessor 003's
/// `webhook_url: "https://hooks.slack.com/..."`).
pub fn deserialize_webhooks<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<WebhookConfig>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<WebhookConfig>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of webhook URLs or tables with `url` and `kind`")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            WebhookVisitor.visit_str(s).map(|one| vec![one])
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            WebhookVisitor.visit_map(map).map(|one| vec![one])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element::<WebhookConfig>()? {
                all.push(one);
            }
            Ok(all)
        }
    }

    deserializer.deserialize_any(OneOrMany)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(url: &str) -> WebhookKind {
        url.parse::<WebhookUrl>().unwrap().kind()
    }

    #[test]
    fn kind_is_inferred_from_the_url() {
        use WebhookKind::*;
        #[rustfmt::skip]
        let cases = [
            ("https://discord.com/api/webhooks/123/abc", Discord),
            ("https://discordapp.com/api/webhooks/123/abc", Discord),
            ("https://canary.discord.com/api/webhooks/123/abc", Discord),
            ("https://DISCORD.com./api/webhooks/123/abc", Discord),
            ("https://discord.com/channels/1/2", Generic),
            ("https://notdiscord.com/api/webhooks/1/2", Generic),
            ("https://hooks.slack.com/services/T0/B0/XYZ", Slack),
            ("https://slack.com/api/chat.postMessage", Generic),
            ("https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d", Teams),
            ("https://outlook.office.com/webhook/a@b/IncomingWebhook/c/d", Teams),
            ("https://webhook.office.com.evil.example/x", Generic),
            ("http://127.0.0.1:8080/hook", Generic),
        ];
        for (url, kind) in cases {
            assert_eq!(kind_of(url), kind, "{url}");
        }
    }

    #[test]
    fn redaction_hides_everything_after_the_host_but_the_fixed_path() {
        #[rustfmt::skip]
        let cases = [
            ("https://discord.com/api/webhooks/123456/s3cr3tT0ken", "https://discord.com/api/webhooks/…"),
            ("https://hooks.slack.com/services/T0/B0/s3cr3tT0ken", "https://hooks.slack.com/services/…"),
            ("https://contoso.webhook.office.com/webhookb2/g@h/IncomingWebhook/s3cr3tT0ken/x", "https://contoso.webhook.office.com/webhookb2/…"),
            ("https://user:s3cr3tT0ken@alerts.example:8443/hook/s3cr3tT0ken?token=s3cr3tT0ken#s3cr3tT0ken", "https://alerts.example:8443/…"),
            ("http://127.0.0.1:9/api/webhooks/1/s3cr3tT0ken", "http://127.0.0.1:9/…"),
        ];
        for (text, shown) in cases {
            let url: WebhookUrl = text.parse().unwrap();
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), shown);
            assert!(!shown.contains("s3cr3t"));
        }
        // An explicit kind shows its own fixed path.
        let config: WebhookConfig = "discord=http://127.0.0.1:9/api/webhooks/1/s3cr3tT0ken"
            .parse()
            .unwrap();
        assert_eq!(config.redacted(), "http://127.0.0.1:9/api/webhooks/…");
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_urls_are_refused_without_showing_them() {
        for text in [
            "hooks.slack.com/services/T0/B0/s3cr3tT0ken",
            "ftp://files.example/s3cr3tT0ken",
            "https://exa mple.com/s3cr3tT0ken",
            "https://user:s3cr3tT0ken@[::1/x",
        ] {
            let err = text.parse::<WebhookUrl>().unwrap_err();
            assert!(err.contains("is not a webhook URL"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn flag_form_takes_an_optional_kind() {
        let plain: WebhookConfig = "https://hooks.slack.com/services/a/b/c".parse().unwrap();
        assert_eq!((plain.kind, plain.kind()), (None, WebhookKind::Slack));
        let forced: WebhookConfig = "generic=https://hooks.slack.com/services/a/b/c"
            .parse()
            .unwrap();
        assert_eq!(forced.kind(), WebhookKind::Generic);
        let query: WebhookConfig = "https://alerts.example/hook?a=b".parse().unwrap();
        assert_eq!(query.kind, None);
        assert!(
            "pager=https://alerts.example/"
                .parse::<WebhookConfig>()
                .is_err()
        );
    }
}
