//! Durations as text, `"250ms"`, `"1m 30s"`; a plain number is seconds, as in
//! predecessor 003's `cooldown: 60`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

use super::capture::MIN_INTERVAL;

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Seconds(u64),
    FractionalSeconds(f64),
    Text(String),
}

pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(deserializer).map_err(|_| {
        D::Error::custom("expected a duration like \"1s\", \"250ms\" or a number of seconds")
    })? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::FractionalSeconds(s) => Duration::try_from_secs_f64(s)
            .map_err(|_| D::Error::custom(format!("{s} is not a duration in seconds"))),
        Raw::Text(text) => humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!("`{text}` is not a duration like 1s or 250ms: {e}"))
        }),
    }
}

pub fn deserialize_nonzero<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let d = deserialize(deserializer)?;
    if d.is_zero() {
        return Err(D::Error::custom("the duration must be above zero"));
    }
    Ok(d)
}

pub fn deserialize_interval<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let d = deserialize(deserializer)?;
    if d < MIN_INTERVAL {
        return Err(D::Error::custom(format!(
            "{} is below the 100ms minimum",
            humantime::format_duration(d)
        )));
    }
    Ok(d)
}
