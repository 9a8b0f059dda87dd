//! Slack incoming webhooks: `text` (the notification and fallback line) and Block Kit
//! `blocks`: a header, the message, the facts as section fields, and a context line.
//! Texts are escaped for mrkdwn and cut to Slack's block limits.

use serde_json::{Value, json};

use super::{Notice, Origin, truncate};

/// Slack's Block Kit limits, in characters.
pub mod limits {
    pub const HEADER: usize = 150;
    pub const SECTION_TEXT: usize = 3000;
    pub const FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2000;
    pub const CONTEXT_TEXT: usize = 2000;
    pub const TEXT: usize = 3000;
}

/// `&`, `<` and `>` are control characters in Slack text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escaped, then cut to `max` without leaving half an entity at the end.
fn escaped(text: &str, max: usize) -> String {
    let mut cut = truncate(&escape(text), max);
    if cut.ends_with('…') {
        let body = cut.trim_end_matches('…');
        if let Some(amp) = body.rfind('&')
            && !body[amp..].contains(';')
        {
            cut = format!("{}…", &body[..amp]);
        }
    }
    cut
}

fn icon(notice: &Notice) -> &'static str {
    match notice {
        Notice::Event { .. } if notice.severity().is_some() => ":rotating_light:",
        Notice::Event { .. } => ":white_check_mark:",
        Notice::Capture(_) => ":floppy_disk:",
    }
}

pub fn payload(notice: &Notice, origin: &Origin) -> Value {
    let headline = notice.headline();
    let text = format!(
        "{} {headline} on {} ({}): {}",
        icon(notice),
        origin.server_name,
        origin.iface,
        notice.summary()
    );
    let fields: Vec<Value> = notice
        .facts(origin)
        .into_iter()
        .take(limits::FIELDS)
        .map(|(name, value)| {
            json!({
                "type": "mrkdwn",
                "text": escaped(&format!("*{name}*\n{value}"), limits::FIELD_TEXT),
            })
        })
        .collect();
    json!({
        "text": escaped(&text, limits::TEXT),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(&format!("{} {headline}", icon(notice)), limits::HEADER),
                    "emoji": true,
                },
            },
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": escaped(&notice.summary(), limits::SECTION_TEXT) },
            },
            { "type": "section", "fields": fields },
            {
                "type": "context",
                "elements": [{
                    "type": "mrkdwn",
                    "text": escaped(
                        &format!(
                            "monitor on {} ({}) · {}",
                            origin.server_name,
                            origin.iface,
                            humantime::format_rfc3339_seconds(notice.time())
                        ),
                        limits::CONTEXT_TEXT,
                    ),
                }],
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::alert::Severity, sink::fixtures::*};

    #[test]
    fn text_and_blocks() {
        let v = payload(&alert(Severity::High), &origin());
        assert_eq!(
            v["text"],
            ":rotating_light: HIGH: SYN flood from 192.0.2.9 on AWS, France (eth0): SYN rate 52,000 SYN/s (threshold 500 SYN/s)"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"],
            ":rotating_light: HIGH: SYN flood from 192.0.2.9"
        );
        assert_eq!(blocks[2]["fields"][0]["text"], "*Server*\nAWS, France");
        assert_eq!(blocks[2]["fields"][2]["text"], "*Kind*\nsyn_flood");
        assert_eq!(blocks[3]["type"], "context");
    }

    #[test]
    fn escaped_and_within_limits() {
        let origin = Origin {
            server_name: "<b&b>".repeat(2_000),
            iface: "eth0".into(),
        };
        let v = payload(&capture(), &origin);
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with(
            ":floppy_disk: Capture written: SYN flood from 192.0.2.9 on &lt;b&amp;b&gt;"
        ));
        assert!(text.chars().count() <= limits::TEXT);
        assert!(!text.contains('<'));
        let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.chars().count() <= limits::HEADER);
        for field in v["blocks"][2]["fields"].as_array().unwrap() {
            let t = field["text"].as_str().unwrap();
            assert!(t.chars().count() <= limits::FIELD_TEXT);
            // No half entity before the ellipsis.
            if let Some(body) = t.strip_suffix('…') {
                let tail = &body[body.rfind('&').unwrap_or(0)..];
                assert!(!tail.starts_with('&') || tail.contains(';'), "{tail}");
            }
        }
        assert_eq!(escaped("a&b", 3), "a…");
    }
}
