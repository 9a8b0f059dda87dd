//! The generic webhook: a JSON POST of the record the JSON log writes
//! (`json_log::record`), so one schema serves files and HTTP receivers alike.

use serde_json::Value;

use super::{Notice, Origin, json_log};

pub fn payload(notice: &Notice, origin: &Origin) -> Value {
    json_log::record(notice, origin)
}
