//! `[export]`: the stats export file (`monitor::export` writes it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Stats exports: one row per interval to a CSV or JSON-lines file (`monitor::export`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// The file; `.csv` for CSV, `.json`/`.jsonl` for JSON lines. Appended to. A
    /// relative path in a file is relative to the configuration file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}
