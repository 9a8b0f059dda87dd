//! Reading a configuration: TOML, or YAML for `.yml`/`.yaml` files, each error located
//! at its line and field; and values laid over the file (the command-line flags) in
//! the same deserialization (`overlay`), so that they are checked alike.

use std::path::{Path, PathBuf};

use super::{
    Config,
    error::{ConfigError, field_path, plain_words},
    overlay::{Layered, Refused},
};

/// Names that predecessors gave a setting, read as its current name: (dotted old key,
/// current name). Renamed as the file is read rather than by serde aliases, so that a
/// flag for the setting replaces the value under its old name too.
const LEGACY_NAMES: &[(&str, &str)] = &[
    // Predecessor 003's per-source thresholds.
    ("detection.thresholds_per_src", "per_source"),
    // Predecessor 002's connection monitor.
    ("connections.scan_interval", "interval"),
    ("connections.connection_limit", "max_per_process"),
    // Predecessor 003's single webhook.
    ("alerting.webhook_url", "webhooks"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// YAML for `.yml` and `.yaml`, TOML otherwise.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("yml") || ext.eq_ignore_ascii_case("yaml") => {
                Self::Yaml
            }
            _ => Self::Toml,
        }
    }
}

impl Config {
    /// Reads a configuration file; list and log file paths in it become relative to its
    /// folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(Some(path), &toml::Table::new(), &|key| format!("`{key}`"))
    }

    /// Parses configuration text; `path` only names it in errors.
    pub fn parse(text: &str, format: Format, path: &Path) -> Result<Self, ConfigError> {
        parse(
            text,
            format,
            path,
            &Layered::new(&toml::Table::new(), LEGACY_NAMES),
        )
    }

    /// The defaults, then the file (as [`Config::from_file`] reads it), then `over`:
    /// values shaped like the file (`{detection = {per_source = {pps = 9000}}}`) that
    /// replace its own, in the one deserialization that reads the file, so that they
    /// are checked by the same code. A value of `over` refused is reported as
    /// `invalid value for NAME: ...`, `NAME` being what `name` calls its dotted key
    /// (the flag that gave it); a path in `over` stays as it is.
    pub fn load(
        file: Option<&Path>,
        over: &toml::Table,
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        let named = |err| match err {
            ConfigError::Override { setting, message } => ConfigError::Override {
                setting: name(&setting),
                message,
            },
            err => err,
        };
        let layered = Layered::new(over, LEGACY_NAMES);
        let Some(path) = file else {
            return alone(&layered).map_err(named);
        };
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let format = Format::of(path);
        let mut config = parse(&text, format, path, &layered).map_err(named)?;
        if layered.replaced() {
            // A value replaced was skipped, not checked: a file refused alone is refused.
            Self::parse(&text, format, path)?;
        }
        if let Some(dir) = path.parent() {
            file_paths_relative_to(dir, &mut config, over);
        }
        Ok(config)
    }

    /// The configuration as TOML, for `--print-config`; it reads back as itself.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

/// The list, log and export files the configuration file names are relative to its
/// folder; those `over` gives are left as they are.
fn file_paths_relative_to(dir: &Path, config: &mut Config, over: &toml::Table) {
    let lists = &mut config.lists;
    let alerting = &mut config.alerting;
    let files: [(&str, Vec<&mut PathBuf>); 5] = [
        (
            "lists.blocklist_files",
            lists.blocklist_files.iter_mut().collect(),
        ),
        (
            "lists.allowlist_files",
            lists.allowlist_files.iter_mut().collect(),
        ),
        ("alerting.log", alerting.log.iter_mut().collect()),
        ("alerting.json_log", alerting.json_log.iter_mut().collect()),
        ("export.path", config.export.path.iter_mut().collect()),
    ];
    for (key, files) in files {
        if value_at(over, key).is_some() {
            continue;
        }
        for file in files {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
    }
}

/// Whether `over` has a value at the dotted `key`.
/// The value at the dotted `key` (`detection.per_source.pps`) of `table`, if there.
pub fn value_at<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let (sections, name) = key.rsplit_once('.').unwrap_or(("", key));
    sections
        .split('.')
        .filter(|section| !section.is_empty())
        .try_fold(table, |table, section| table.get(section)?.as_table())?
        .get(name)
}

fn parse(
    text: &str,
    format: Format,
    path: &Path,
    layered: &Layered<'_>,
) -> Result<Config, ConfigError> {
    match format {
        Format::Toml => parse_toml(text, path, layered),
        Format::Yaml => parse_yaml(text, path, layered),
    }
}

/// The values laid over no file at all.
fn alone(layered: &Layered<'_>) -> Result<Config, ConfigError> {
    layered.deserialize_alone().map_err(|err| {
        refusal(layered.refused().unwrap_or(Refused {
            key: String::new(),
            message: err.to_string(),
        }))
    })
}

/// A value laid over the file that was refused; its key is named by `Config::load`.
fn refusal(refused: Refused) -> ConfigError {
    ConfigError::Override {
        setting: refused.key,
        message: plain_words(&refused.message),
    }
}

fn parse_toml(text: &str, path: &Path, layered: &Layered<'_>) -> Result<Config, ConfigError> {
    let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let invalid =
        |err: &toml::de::Error, field: Option<String>, line: Option<usize>| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line.or_else(|| err.span().map(|span| line_at(span.start))),
            field,
            message: plain_words(err.message()),
        };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| invalid(&err, None, None))?;
    read_tracked(layered, deserializer, |err, at| {
        // toml places an error in an array element on the whole array; the element's
        // own span gives its line.
        let line = toml_value_start(text, at).map(line_at);
        invalid(&err, field_path(at), line)
    })
}

/// Reads the file through `layered`, tracking the path to a failing field; a refused
/// flag value is the error to report, else `invalid` words the file's own.
fn read_tracked<'de, D: serde::Deserializer<'de>>(
    layered: &Layered<'_>,
    deserializer: D,
    invalid: impl FnOnce(D::Error, &serde_path_to_error::Path) -> ConfigError,
) -> Result<Config, ConfigError> {
    let mut track = serde_path_to_error::Track::new();
    let read = layered.deserialize(serde_path_to_error::Deserializer::new(
        deserializer,
        &mut track,
    ));
    read.map_err(|err| match layered.refused() {
        Some(refused) => refusal(refused),
        None => invalid(err, &track.path()),
    })
}

/// Where the value at `path` starts in the TOML `text`, if it is there.
fn toml_value_start(text: &str, path: &serde_path_to_error::Path) -> Option<usize> {
    use serde_path_to_error::Segment;
    use toml::de::{DeTable, DeValue};

    let root = DeTable::parse(text).ok()?;
    let root = DeValue::Table(root.into_inner());
    let mut value = &root;
    let mut start = None;
    for segment in path {
        let next = match segment {
            Segment::Map { key } => value.get(key.as_str())?,
            Segment::Seq { index } => value.get(*index)?,
            Segment::Enum { .. } | Segment::Unknown => return start,
        };
        start = Some(next.span().start);
        value = next.get_ref();
    }
    start
}

fn parse_yaml(text: &str, path: &Path, layered: &Layered<'_>) -> Result<Config, ConfigError> {
    // An empty document (or only comments) is no configuration at all: the defaults.
    let is_empty = text
        .lines()
        .all(|line| matches!(line.trim(), "" | "---") || line.trim_start().starts_with('#'));
    if is_empty {
        return alone(layered);
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    read_tracked(layered, deserializer, |err, at| {
        let location = err.location();
        // serde_yaml_ng puts its own path in front and the location behind; both are
        // reported separately here.
        let mut message = err.to_string();
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.contains(' ') {
                message = rest.to_owned();
            }
        }
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: location.map(|loc| loc.line()),
            field: field_path(at),
            message: plain_words(&message),
        }
    })
}
