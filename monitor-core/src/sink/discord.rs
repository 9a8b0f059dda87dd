//! Discord: a message with one rich embed, as predecessor 004 sends: red for a
//! critical alert (other colours per severity, green for an end), the server name, the
//! kind, the source and target, value and threshold, pps and bandwidth where known;
//! after a capture, a follow-up embed naming the pcap file.
//!
//! Discord refuses a message past its limits, so every text is cut to them on a
//! character boundary (see [`limits`]) and the whole message is kept under the total.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Notice, Origin, truncate};
use crate::model::alert::Severity;

/// Discord's documented embed limits, in characters.
pub mod limits {
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    pub const AUTHOR: usize = 256;
    /// Title, description, field names and values, footer and author of all the
    /// embeds of one message, together.
    pub const TOTAL: usize = 6000;
    pub const EMBEDS: usize = 10;
    pub const USERNAME: usize = 80;
}

pub const RED: u32 = 0xE7_4C_3C;
pub const ORANGE: u32 = 0xE6_7E_22;
pub const YELLOW: u32 = 0xF1_C4_0F;
pub const BLUE: u32 = 0x34_98_DB;
pub const GREEN: u32 = 0x2E_CC_71;
pub const GREY: u32 = 0x95_A5_A6;

pub fn colour(notice: &Notice) -> u32 {
    match notice {
        Notice::Event { .. } => match notice.severity() {
            Some(Severity::Critical) => RED,
            Some(Severity::High) => ORANGE,
            Some(Severity::Medium) => YELLOW,
            Some(Severity::Low) => BLUE,
            None => GREEN,
        },
        Notice::Capture(_) => GREY,
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Footer {
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Author {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Embed {
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub color: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    pub fields: Vec<Field>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<Footer>,
    /// ISO 8601; Discord shows it in the reader's time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Discord refuses empty field names and values.
fn non_empty(text: String) -> String {
    if text.trim().is_empty() {
        "-".into()
    } else {
        text
    }
}

impl Embed {
    /// The characters that count toward the message total.
    pub fn counted_chars(&self) -> usize {
        chars(&self.title)
            + chars(&self.description)
            + self.author.as_ref().map_or(0, |a| chars(&a.name))
            + self.footer.as_ref().map_or(0, |f| chars(&f.text))
            + self
                .fields
                .iter()
                .map(|f| chars(&f.name) + chars(&f.value))
                .sum::<usize>()
    }

    /// Cuts every part to its own limit, then the whole to `budget` characters: the
    /// description gives way first, then the last fields, then footer and author, and
    /// the title last.
    pub fn fit(&mut self, budget: usize) {
        self.title = truncate(&self.title, limits::TITLE);
        self.description = truncate(&self.description, limits::DESCRIPTION);
        if let Some(author) = &mut self.author {
            author.name = truncate(&author.name, limits::AUTHOR);
        }
        if let Some(footer) = &mut self.footer {
            footer.text = truncate(&footer.text, limits::FOOTER);
        }
        self.fields.truncate(limits::FIELDS);
        for field in &mut self.fields {
            field.name = truncate(
                &non_empty(std::mem::take(&mut field.name)),
                limits::FIELD_NAME,
            );
            field.value = truncate(
                &non_empty(std::mem::take(&mut field.value)),
                limits::FIELD_VALUE,
            );
        }

        let mut over = self.counted_chars().saturating_sub(budget);
        if over > 0 {
            let keep = chars(&self.description).saturating_sub(over);
            over -= chars(&self.description) - keep;
            // One character left would be only the ellipsis: drop it all.
            self.description = if keep >= 2 {
                truncate(&self.description, keep)
            } else {
                String::new()
            };
        }
        while over > 0
            && let Some(field) = self.fields.pop()
        {
            over = over.saturating_sub(chars(&field.name) + chars(&field.value));
        }
        if over > 0
            && let Some(footer) = self.footer.take()
        {
            over = over.saturating_sub(chars(&footer.text));
        }
        if over > 0
            && let Some(author) = self.author.take()
        {
            over = over.saturating_sub(chars(&author.name));
        }
        if over > 0 {
            let keep = chars(&self.title).saturating_sub(over).max(1);
            self.title = truncate(&self.title, keep);
        }
    }
}

/// The embed for one notice, before it is fitted to the limits.
pub fn embed(notice: &Notice, origin: &Origin) -> Embed {
    let description = match notice {
        // The file name is what the reader needs: make it stand out.
        Notice::Capture(c) => format!(
            "{} packets written to `{}`",
            crate::model::format::thousands(c.packets),
            c.path.display()
        ),
        Notice::Event { .. } => notice.summary(),
    };
    Embed {
        title: notice.headline(),
        description,
        color: colour(notice),
        author: Some(Author {
            name: origin.server_name.clone(),
        }),
        fields: notice
            .facts(origin)
            .into_iter()
            .map(|(name, value)| Field {
                name: name.to_owned(),
                value,
                // The long ones get a line of their own.
                inline: !matches!(name, "Value" | "Peak" | "Flow" | "File"),
            })
            .collect(),
        footer: Some(Footer {
            text: format!("monitor on {} ({})", origin.server_name, origin.iface),
        }),
        timestamp: Some(humantime::format_rfc3339_millis(notice.time()).to_string()),
    }
}

/// A message of up to 10 embeds, fitted to Discord's limits. Mentions are off, so a
/// name in an alert can never ping anyone.
pub fn message(mut embeds: Vec<Embed>) -> Value {
    embeds.truncate(limits::EMBEDS);
    let mut left = limits::TOTAL;
    let mut kept = Vec::with_capacity(embeds.len());
    for mut embed in embeds {
        if left == 0 {
            break;
        }
        embed.fit(left);
        left = left.saturating_sub(embed.counted_chars());
        kept.push(embed);
    }
    json!({
        "username": truncate("monitor", limits::USERNAME),
        "allowed_mentions": { "parse": [] },
        "embeds": kept,
    })
}

/// The webhook body for one notice.
pub fn payload(notice: &Notice, origin: &Origin) -> Value {
    message(vec![embed(notice, origin)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::alert::Target, sink::fixtures::*};

    fn embeds(v: &Value) -> Vec<Embed> {
        v["embeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let fields = e["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| Field {
                        name: f["name"].as_str().unwrap().into(),
                        value: f["value"].as_str().unwrap().into(),
                        inline: f["inline"].as_bool().unwrap(),
                    })
                    .collect();
                Embed {
                    title: e["title"].as_str().unwrap().into(),
                    description: e["description"].as_str().unwrap_or("").into(),
                    color: e["color"].as_u64().unwrap() as u32,
                    author: e["author"]["name"]
                        .as_str()
                        .map(|n| Author { name: n.into() }),
                    fields,
                    footer: e["footer"]["text"]
                        .as_str()
                        .map(|t| Footer { text: t.into() }),
                    timestamp: None,
                }
            })
            .collect()
    }

    fn assert_within_limits(v: &Value) {
        let all = embeds(v);
        assert!(all.len() <= limits::EMBEDS);
        let total: usize = all.iter().map(Embed::counted_chars).sum();
        assert!(total <= limits::TOTAL, "total {total}");
        for e in &all {
            assert!(chars(&e.title) <= limits::TITLE && !e.title.is_empty());
            assert!(chars(&e.description) <= limits::DESCRIPTION);
            assert!(e.fields.len() <= limits::FIELDS);
            for f in &e.fields {
                assert!(!f.name.is_empty() && chars(&f.name) <= limits::FIELD_NAME);
                assert!(!f.value.is_empty() && chars(&f.value) <= limits::FIELD_VALUE);
            }
            if let Some(footer) = &e.footer {
                assert!(chars(&footer.text) <= limits::FOOTER);
            }
            if let Some(author) = &e.author {
                assert!(chars(&author.name) <= limits::AUTHOR);
            }
        }
    }

    #[test]
    fn critical_alert_is_a_red_embed_with_the_facts() {
        let v = payload(&alert(Severity::Critical), &origin());
        assert_eq!(v["allowed_mentions"]["parse"], json!([]));
        let e = &v["embeds"][0];
        assert_eq!(e["title"], "CRITICAL: SYN flood from 192.0.2.9");
        assert_eq!(e["color"], RED);
        assert_eq!(
            e["description"],
            "SYN rate 52,000 SYN/s (threshold 500 SYN/s)"
        );
        assert_eq!(e["author"]["name"], "AWS, France");
        assert_eq!(e["timestamp"], "2025-09-03T21:09:12.012Z");
        let field = |name: &str| {
            e["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .unwrap_or_else(|| panic!("no field {name}: {e}"))["value"]
                .clone()
        };
        assert_eq!(field("Server"), "AWS, France");
        assert_eq!(field("Kind"), "syn_flood");
        assert_eq!(field("Source"), "192.0.2.9");
        assert_eq!(field("PPS"), "52,310");
        assert_eq!(field("Bandwidth"), "26.8 Mbit/s");
        assert_within_limits(&v);
    }

    #[test]
    fn colours_per_severity_and_for_ends_and_captures() {
        let c = |n: &Notice| {
            payload(n, &origin())["embeds"][0]["color"]
                .as_u64()
                .unwrap() as u32
        };
        assert_eq!(c(&alert(Severity::Critical)), RED);
        assert_eq!(c(&alert(Severity::High)), ORANGE);
        assert_eq!(c(&alert(Severity::Medium)), YELLOW);
        assert_eq!(c(&alert(Severity::Low)), BLUE);
        assert_eq!(c(&end()), GREEN);
        assert_eq!(c(&capture()), GREY);
        let v = payload(&capture(), &origin());
        assert_eq!(
            v["embeds"][0]["description"],
            "10,000 packets written to `captures/syn_flood_192.0.2.9_20250903T210912Z.pcap`"
        );
    }

    #[test]
    fn huge_texts_are_cut_to_every_limit() {
        // Multi-byte characters everywhere: a cut inside one would panic or garble.
        let long = "é🚨x".repeat(5_000);
        let origin = Origin {
            server_name: long.clone(),
            iface: long.clone(),
        };
        let mut notice = alert(Severity::Critical);
        if let Notice::Event {
            event: crate::model::alert::AlertEvent::Alert(a),
            ..
        } = &mut notice
        {
            a.message = long.clone();
            a.target = Target::Interface(long.clone());
        }
        let v = payload(&notice, &origin);
        assert_within_limits(&v);
        let e = &embeds(&v)[0];
        assert!(e.title.starts_with("CRITICAL: SYN flood"));
        assert!(e.description.ends_with('…'));

        // Many embeds share the 6,000 total; past 10 they are left out.
        let many: Vec<Embed> = (0..12).map(|_| embed(&notice, &origin)).collect();
        let v = message(many);
        assert_within_limits(&v);

        // An embed with more fields than allowed.
        let mut wide = embed(&alert(Severity::Low), &super::super::fixtures::origin());
        wide.fields = (0..40)
            .map(|i| Field {
                name: format!("f{i}"),
                value: String::new(),
                inline: true,
            })
            .collect();
        let v = message(vec![wide]);
        assert_within_limits(&v);
        assert_eq!(embeds(&v)[0].fields.len(), limits::FIELDS);
        assert_eq!(embeds(&v)[0].fields[0].value, "-");
    }

    #[test]
    fn fit_gives_way_in_order() {
        let mut e = embed(&alert(Severity::High), &origin());
        e.description = "d".repeat(100);
        let full = e.counted_chars();
        let mut cut = e.clone();
        cut.fit(full - 10);
        assert_eq!(cut.counted_chars(), full - 10);
        assert_eq!(cut.fields, e.fields);
        assert_eq!(chars(&cut.description), 90);
        let mut tiny = e.clone();
        tiny.fit(20);
        assert!(tiny.counted_chars() <= 20, "{}", tiny.counted_chars());
        assert!(tiny.fields.is_empty() && tiny.description.is_empty());
        assert!(!tiny.title.is_empty());
    }
}
