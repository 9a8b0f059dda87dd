//! Reading a configuration: TOML, or YAML for `.yml`/`.yaml` files, each error located
//! at its line and field.

use std::path::Path;

use super::{
    Config,
    error::{ConfigError, field_path, plain_words},
};

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
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut config = Self::parse(&text, Format::of(path), path)?;
        if let Some(dir) = path.parent() {
            let lists = &mut config.lists;
            let alerting = &mut config.alerting;
            for file in lists
                .blocklist_files
                .iter_mut()
                .chain(&mut lists.allowlist_files)
                .chain(&mut alerting.log)
                .chain(&mut alerting.json_log)
                .chain(&mut config.export.path)
            {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Parses configuration text; `path` only names it in errors.
    pub fn parse(text: &str, format: Format, path: &Path) -> Result<Self, ConfigError> {
        match format {
            Format::Toml => parse_toml(text, path),
            Format::Yaml => parse_yaml(text, path),
        }
    }

    /// The configuration as TOML, for `--print-config`; it reads back as itself.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

fn parse_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let invalid =
        |err: &toml::de::Error, field: Option<String>, line: Option<usize>| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line.or_else(|| err.span().map(|span| line_at(span.start))),
            field,
            message: plain_words(err.message()),
        };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| invalid(&err, None, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // toml places an error in an array element on the whole array; the element's
        // own span gives its line.
        let line = toml_value_start(text, err.path()).map(line_at);
        invalid(err.inner(), field_path(err.path()), line)
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
    for segment in path.iter() {
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

fn parse_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
    // An empty document (or only comments) is no configuration at all: the defaults.
    let is_empty = text
        .lines()
        .all(|line| matches!(line.trim(), "" | "---") || line.trim_start().starts_with('#'));
    if is_empty {
        return Ok(Config::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let location = err.inner().location();
        // serde_yaml_ng puts its own path in front and the location behind; both are
        // reported separately here.
        let mut message = err.inner().to_string();
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
            field: field_path(err.path()),
            message: plain_words(&message),
        }
    })
}
