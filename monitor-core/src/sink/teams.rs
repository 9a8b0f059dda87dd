//! Microsoft Teams: a message carrying one Adaptive Card (the format both Teams'
//! incoming webhooks and Workflows webhooks accept): the headline in the severity's
//! colour, the message, and the facts as a FactSet.

use serde_json::{Value, json};

use super::{Notice, Origin, truncate};
use crate::model::alert::Severity;

/// Teams refuses a message over about 28 KB; every text is cut well below that.
const MAX_TEXT: usize = 2000;

/// Adaptive Card colour names: Attention is red, Warning amber, Accent blue.
fn colour(notice: &Notice) -> &'static str {
    match notice {
        Notice::Event { .. } => match notice.severity() {
            Some(Severity::Critical | Severity::High) => "Attention",
            Some(Severity::Medium) => "Warning",
            Some(Severity::Low) => "Accent",
            None => "Good",
        },
        Notice::Capture(_) => "Default",
    }
}

pub fn payload(notice: &Notice, origin: &Origin) -> Value {
    let facts: Vec<Value> = notice
        .facts(origin)
        .into_iter()
        .map(|(name, value)| json!({ "title": name, "value": truncate(&value, MAX_TEXT) }))
        .collect();
    json!({
        "type": "message",
        "summary": truncate(&notice.headline(), MAX_TEXT),
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {
                        "type": "TextBlock",
                        "text": truncate(&notice.headline(), MAX_TEXT),
                        "size": "Large",
                        "weight": "Bolder",
                        "color": colour(notice),
                        "wrap": true,
                    },
                    { "type": "TextBlock", "text": truncate(&notice.summary(), MAX_TEXT), "wrap": true },
                    { "type": "FactSet", "facts": facts },
                ],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::fixtures::*;

    #[test]
    fn adaptive_card_with_facts() {
        let v = payload(&alert(Severity::Critical), &origin());
        assert_eq!(v["type"], "message");
        let card = &v["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let body = &card["content"]["body"];
        assert_eq!(body[0]["text"], "CRITICAL: SYN flood from 192.0.2.9");
        assert_eq!(body[0]["color"], "Attention");
        assert_eq!(
            body[2]["facts"][0],
            json!({"title": "Server", "value": "AWS, France"})
        );
        assert_eq!(
            payload(&end(), &origin())["attachments"][0]["content"]["body"][0]["color"],
            "Good"
        );
    }
}
