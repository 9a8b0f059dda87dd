//! The log-file and JSON-log sinks: each notice becomes one line (`log_file::line` or
//! `json_log::line`), appended and flushed before the next: tokio's file reports a
//! failed write only at the next operation, and the flush makes it count against the
//! notice it belongs to.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use tokio::io::AsyncWriteExt as _;

use crate::sink::{Notice, Origin};

/// The line a file sink writes for a notice, without its newline.
pub(super) type Line = fn(&Notice, &Origin) -> String;

pub(super) struct FileSink {
    path: PathBuf,
    file: tokio::fs::File,
    line: Line,
}

impl FileSink {
    /// Opens `path` for appending, creating it; `what` names the file in the error.
    pub(super) fn open(path: &Path, line: Line, what: &str) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("failed to open the {what} {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: tokio::fs::File::from_std(file),
            line,
        })
    }

    pub(super) async fn write(&mut self, notice: &Notice, origin: &Origin) -> Result<(), String> {
        let mut text = (self.line)(notice, origin);
        text.push('\n');
        let written = async {
            self.file.write_all(text.as_bytes()).await?;
            self.file.flush().await
        };
        written
            .await
            .map_err(|err| format!("failed to write to {}: {err}", self.path.display()))
    }
}
