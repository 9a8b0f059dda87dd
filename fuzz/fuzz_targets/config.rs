//! The configuration parser on arbitrary text, as TOML and as YAML: it must not
//! panic; an error is one line naming the file (and the line, when it names one that
//! exists); a configuration it accepts prints as TOML that reads back as itself
//! (webhook URLs aside: printed redacted).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use monitor_core::config::{Config, ConfigError, Format};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // Seeds start with `T` (even: TOML) or `Y` (odd: YAML).
    let (format, path) = if selector & 1 == 0 {
        (Format::Toml, Path::new("monitor.toml"))
    } else {
        (Format::Yaml, Path::new("monitor.yml"))
    };
    match Config::parse(text, format, path) {
        Ok(mut config) => {
            // Printed webhook URLs are redacted, so they cannot read back as themselves.
            config.alerting.webhooks.clear();
            let printed = config.to_toml().expect("an accepted configuration prints");
            let again = Config::parse(&printed, Format::Toml, Path::new("printed.toml"))
                .unwrap_or_else(|e| panic!("printed configuration refused: {e}\n{printed}"));
            assert_eq!(again, config, "printed:\n{printed}");
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!message.contains('\n'), "more than one line: {message:?}");
            assert!(message.starts_with(path.to_str().unwrap()), "{message}");
            if let ConfigError::Invalid {
                line: Some(line), ..
            } = err
            {
                // YAML breaks lines at CR, LF and CR LF; TOML at LF and CR LF (a lone
                // CR is an error there). A line past the end of the text is possible
                // only just past it (an error at the end of input).
                let lines = match format {
                    Format::Yaml => text.replace("\r\n", "\n").replace('\r', "\n"),
                    Format::Toml => text.to_owned(),
                }
                .lines()
                .count();
                assert!(
                    line >= 1 && line <= lines + 1,
                    "line {line} of a {lines}-line text: {message}"
                );
            }
        }
    }
});
