//! Why a configuration is refused, said on one line naming the file, the line and the
//! field, in words a user writes rather than Rust type names.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

/// A configuration the monitor cannot start with. Displayed on one line, naming the
/// file, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {}: {cause}", path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("{}: {message}", Location { path, line: *line, field: field.as_deref() })]
    Invalid {
        path: PathBuf,
        /// 1-based; `None` when the parser could not tell.
        line: Option<usize>,
        /// Dotted path, e.g. `detection.per_source.pps`.
        field: Option<String>,
        message: String,
    },
    /// A value laid over the file (a command-line flag) that its setting refuses.
    #[error("invalid value for {setting}: {message}")]
    Override {
        /// What gave the value, e.g. `--source-pps`.
        setting: String,
        message: String,
    },
    #[error("{}, line {line}: {message}", path.display())]
    ListEntry {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

struct Location<'a> {
    path: &'a Path,
    line: Option<usize>,
    field: Option<&'a str>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(field) = self.field {
            write!(f, ", field `{field}`")?;
        }
        Ok(())
    }
}

/// serde names Rust types ("expected a nonzero u64"); say what to write instead.
pub(super) fn plain_words(message: &str) -> String {
    [
        ("a nonzero u64", "a whole number above 0"),
        ("a nonzero u32", "a whole number above 0"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(one_line(message.trim()), |text, (from, to)| {
        text.replace(from, to)
    })
}

/// A key or value quoted in an error may hold line breaks (a YAML key spread over
/// lines, a TOML key with `\n`); the error stays one line, with them escaped.
pub(super) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn field_path(path: &serde_path_to_error::Path) -> Option<String> {
    let text = one_line(&path.to_string());
    (text != ".").then_some(text)
}
