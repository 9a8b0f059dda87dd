//! Reading, printing and refusing configurations: the example file is the defaults,
//! errors name their line and field, and the YAML of predecessor 003 is read.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::*;

fn toml(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Format::Toml, Path::new("monitor.toml"))
}

fn yaml(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Format::Yaml, Path::new("config.yml"))
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor.example.toml")
}

#[test]
fn the_shipped_example_is_the_defaults() {
    let example = Config::from_file(&example_path()).unwrap();
    assert_eq!(example, Config::default());
}

/// Every setting the defaults serialize must be spelled out (uncommented) in the
/// example, so that the example documents every field.
#[test]
fn the_shipped_example_names_every_field() {
    fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => keys(&format!("{path}."), inner, out),
                _ => out.push(path),
            }
        }
    }
    let text = std::fs::read_to_string(example_path()).unwrap();
    let example: toml::Table = text.parse().unwrap();
    let defaults: toml::Table = Config::default().to_toml().unwrap().parse().unwrap();
    let (mut documented, mut all) = (Vec::new(), Vec::new());
    keys("", &example, &mut documented);
    keys("", &defaults, &mut all);
    let missing: Vec<_> = all.iter().filter(|k| !documented.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "not in monitor.example.toml: {missing:?}"
    );
    // The optional settings are shown commented out.
    assert!(text.contains("# iface = "));
    assert!(text.contains("# bpf = "));
}

#[test]
fn printed_config_reads_back_as_itself() {
    let mut config = Config::default();
    config.capture.iface = Some("eth0".into());
    config.capture.interval = Duration::from_millis(250);
    config.lists.blocklist = vec![
        "192.0.2.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    config.lists.blocklist_files = vec![PathBuf::from("/etc/monitor/block.txt")];
    config.detection.spike.alpha = Fraction(0.5);
    let text = config.to_toml().unwrap();
    assert!(text.contains("interval = \"250ms\""), "{text}");
    assert_eq!(toml(&text).unwrap(), config);
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(toml("").unwrap(), Config::default());
    assert_eq!(yaml("# nothing yet\n").unwrap(), Config::default());
}

#[test]
fn partial_sections_keep_the_other_defaults() {
    let config = toml("[detection.per_source]\npps = 8000\n[alerting]\ncooldown = 30\n").unwrap();
    assert_eq!(config.detection.per_source.pps.get(), 8_000);
    assert_eq!(config.detection.per_source.bytes_per_sec.get(), 20_000_000);
    assert_eq!(config.alerting.cooldown, Duration::from_secs(30));
    assert_eq!(config.detection.host, HostThresholds::default());
}

#[test]
fn errors_name_the_file_line_and_field() {
    // (file text, line, field, words in the message)
    #[rustfmt::skip]
    let cases = [
        ("[detection.per_source]\npps = 0\n", 2, "detection.per_source.pps", "invalid value: integer `0`, expected a whole number above 0"),
        ("[detection.per_source]\n\npps = -5\n", 3, "detection.per_source.pps", "integer `-5`"),
        ("[detection.host]\nsyn_per_sec = \"lots\"\n", 2, "detection.host.syn_per_sec", "invalid type: string \"lots\", expected a whole number above 0"),
        ("[detection.per_source]\nppps = 4000\n", 2, "detection.per_source.ppps", "unknown field `ppps`"),
        ("[capture]\ninterval = \"10ms\"\n", 2, "capture.interval", "10ms is below the 100ms minimum"),
        ("[capture]\ntop = 2.5\n", 2, "capture.top", "expected a whole number"),
        ("[detection.spike]\nalpha = 1.5\n", 2, "detection.spike.alpha", "above 0 and at most 1, got 1.5"),
        ("[detection.spike]\nk_sigma = 0\n", 2, "detection.spike.k_sigma", "above 0, got 0"),
        ("[detection.port_scan]\nwindow = \"0s\"\n", 2, "detection.port_scan.window", "above zero"),
        ("[lists]\nblocklist = [\n  \"192.0.2.0/24\",\n  \"10.0.0.0/33\",\n]\n", 4, "lists.blocklist[1]", "prefix length must be 0 to 32"),
        ("[lists]\nexclude_private_from_burst = \"no\"\n", 2, "lists.exclude_private_from_burst", "expected true or false"),
        ("[capture]\nxdp_mode = \"fast\"\n", 2, "capture.xdp_mode", "unknown variant `fast`"),
        ("[alerting]\ncooldown = \"soon\"\n", 2, "alerting.cooldown", "`soon` is not a duration"),
        ("[nope]\n", 1, "nope", "unknown field `nope`"),
    ];
    for (text, line, field, words) in cases {
        let err = toml(text).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains('\n'), "one line: {shown}");
        assert!(
            shown.starts_with(&format!("monitor.toml, line {line}, field `{field}`: ")),
            "{shown}"
        );
        assert!(shown.contains(words), "{shown}");
    }
    let syntax = toml("[capture]\niface = eth0\n").unwrap_err().to_string();
    assert!(syntax.starts_with("monitor.toml, line 2: "), "{syntax}");
}

#[test]
fn yaml_in_the_shape_of_predecessor_003() {
    let text = "capture:\n  iface: eth0\n\ndetection:\n  thresholds_per_src:\n    pps: 4000\n    bytes_per_sec: 20000000\nalerting:\n  cooldown: 60\n";
    let config = yaml(text).unwrap();
    assert_eq!(config.capture.iface.as_deref(), Some("eth0"));
    assert_eq!(config.alerting.cooldown, Duration::from_secs(60));
    assert_eq!(config.detection, DetectionConfig::default());

    let err = yaml("detection:\n  per_source:\n    pps: 0\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "config.yml, line 3, field `detection.per_source.pps`: invalid value: integer `0`, expected a whole number above 0"
    );
    // Its single `webhook_url` is read as one webhook, its kind inferred.
    let config = yaml(
        "alerting:\n  webhook_url: \"https://hooks.slack.com/services/T0/B0/x\"\n  cooldown: 60\n",
    )
    .unwrap();
    assert_eq!(config.alerting.webhooks.len(), 1);
    assert_eq!(config.alerting.webhooks[0].kind(), WebhookKind::Slack);
    let err = yaml("alerting:\n  verbosity: high\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("config.yml, line 2, field `alerting.verbosity`: unknown field"),
        "{err}"
    );
}

#[test]
fn webhooks_as_urls_or_tables() {
    let config = toml(
        "[alerting]\nwebhooks = [\n  \"https://discord.com/api/webhooks/1/tok\",\n  { url = \"https://alerts.example/hook\", kind = \"slack\" },\n]\n",
    )
    .unwrap();
    let hooks = &config.alerting.webhooks;
    assert_eq!(hooks[0].kind(), WebhookKind::Discord);
    assert_eq!(hooks[1].kind(), WebhookKind::Slack);
    // Printed redacted, with the kind in effect.
    let printed = config.to_toml().unwrap();
    assert!(!printed.contains("tok"), "{printed}");
    assert!(
        printed.contains("url = \"https://discord.com/api/webhooks/…\""),
        "{printed}"
    );
    assert!(printed.contains("kind = \"discord\""), "{printed}");

    #[rustfmt::skip]
    let cases = [
        ("[alerting]\nwebhooks = [\"ftp://x.example/s3cr3t\"]\n", "alerting.webhooks[0]", "the scheme must be http or https"),
        ("[alerting]\nwebhooks = [\n  \"https://a.example/\",\n  { url = \"https://b.example/s3cr3t\", kind = \"pager\" },\n]\n", "alerting.webhooks[1].kind", "unknown variant `pager`"),
        ("[alerting]\nwebhooks = [{ uri = \"https://b.example/\" }]\n", "alerting.webhooks[0].uri", "unknown field `uri`"),
        ("[alerting.delivery]\nrate_per_sec = 0\n", "alerting.delivery.rate_per_sec", "above 0"),
        ("[alerting.delivery]\ntimeout = \"0s\"\n", "alerting.delivery.timeout", "above zero"),
    ];
    for (text, field, words) in cases {
        let err = toml(text).unwrap_err().to_string();
        assert!(err.contains(&format!("field `{field}`")), "{err}");
        assert!(err.contains(words), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

#[test]
fn format_follows_the_extension() {
    assert_eq!(Format::of(Path::new("a/monitor.toml")), Format::Toml);
    assert_eq!(Format::of(Path::new("config.YAML")), Format::Yaml);
    assert_eq!(Format::of(Path::new("config.yml")), Format::Yaml);
    assert_eq!(Format::of(Path::new("monitor.conf")), Format::Toml);
}

#[test]
fn list_files_are_relative_to_the_config_file() {
    let dir = std::env::temp_dir().join(format!("monitor-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("monitor.toml");
    std::fs::write(
        &path,
        "[lists]\nblocklist_files = [\"block.txt\", \"/abs/list.txt\"]\n",
    )
    .unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(
        config.lists.blocklist_files,
        [dir.join("block.txt"), PathBuf::from("/abs/list.txt")]
    );
    let missing = Config::from_file(&dir.join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("failed to read ") && missing.contains("absent.toml"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Found by `cargo xtask fuzz` (target `config`, the exact bytes after its format
/// byte): YAML breaks lines at a lone CR too, so the error's line (21) counts the
/// 19 CRs; the message stays one line.
#[test]
fn a_yaml_error_after_lone_carriage_returns_is_one_line_naming_the_yaml_line() {
    let text = concat!(
        "detection:\n~ %pe",
        "\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r",
        "r_source:0    pps: 1000\n    s}n_pebhooks:\n",
        "    - url: \"http://127.0.0.1:9block.txt\"]\n"
    );
    let err = yaml(text).unwrap_err();
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.starts_with("config.yml, line 21, field `detection`"),
        "{message}"
    );
}

/// Found by `cargo xtask fuzz` (target `config`, the exact bytes after its format
/// byte): an unknown key spread over 61 lines was quoted as it was, line breaks and
/// all, in the field and the message.
#[test]
fn an_unknown_key_with_line_breaks_is_quoted_on_one_line() {
    let text = format!("{{tectiona non.per_ogins.wjbheo= {}73c", "\n".repeat(61));
    let message = yaml(&text).unwrap_err().to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.contains("unknown field `tectiona non.per_ogins.wjbheo=\\n\\n"),
        "{message}"
    );
    let toml_key = toml("\"a\\nb\" = 1").unwrap_err().to_string();
    assert!(!toml_key.contains('\n'), "{toml_key}");
}

fn laid(text: &str) -> toml::Table {
    text.parse().unwrap()
}

fn flag_name(key: &str) -> String {
    format!("--flag-for-{key}")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn values_laid_over_a_file_replace_its_own_and_fill_in_the_rest() {
    let dir = temp_dir("config-laid");
    let over = laid(
        "detection.per_source.pps = 9000\ndetection.spike.k_sigma = 2\nmitigate.mode = \"on\"\n",
    );
    for (name, text) in [
        (
            "monitor.toml",
            "[detection.per_source]\npps = 8000\nicmp_pps = 700\n",
        ),
        (
            "monitor.yml",
            "detection:\n  per_source:\n    pps: 8000\n    icmp_pps: 700\n",
        ),
        // The old name of the section: the laid value replaces the file's under it.
        (
            "old.yml",
            "detection:\n  thresholds_per_src:\n    pps: 8000\n    icmp_pps: 700\n",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let config = Config::load(Some(&path), &over, &flag_name).unwrap();
        let source = &config.detection.per_source;
        assert_eq!(
            (source.pps.get(), source.icmp_pps.get()),
            (9_000, 700),
            "{name}"
        );
        assert_eq!(config.detection.spike.k_sigma, Positive(2.0), "{name}");
        assert_eq!(config.mitigate.mode, MitigateMode::On, "{name}");
        assert_eq!(config.capture, CaptureConfig::default(), "{name}");
    }
    let alone = Config::load(None, &over, &flag_name).unwrap();
    assert_eq!(alone.detection.per_source.pps.get(), 9_000);
    assert_eq!(alone.detection.per_source.icmp_pps.get(), 500);
    assert_eq!(
        Config::load(None, &toml::Table::new(), &flag_name).unwrap(),
        Config::default()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_value_laid_over_is_refused_in_the_files_words_naming_what_gave_it() {
    #[rustfmt::skip]
    let cases = [
        ("detection.per_source.pps = 0", "--flag-for-detection.per_source.pps", "invalid value: integer `0`, expected a whole number above 0"),
        ("capture.interval = \"10ms\"", "--flag-for-capture.interval", "10ms is below the 100ms minimum"),
        ("capture.top = 2.5", "--flag-for-capture.top", "invalid type: floating point `2.5`, expected a whole number"),
        ("lists.blocklist = [\"10.0.0.0/33\"]", "--flag-for-lists.blocklist", "prefix length must be 0 to 32"),
        ("alerting.webhooks = [\"ftp://x.example/s3cr3t\"]", "--flag-for-alerting.webhooks", "the scheme must be http or https"),
        ("capture.nope = 1", "--flag-for-capture.nope", "unknown field `nope`"),
    ];
    let dir = temp_dir("config-refused");
    let file = dir.join("monitor.toml");
    std::fs::write(&file, "[detection.per_source]\nbytes_per_sec = 5\n").unwrap();
    for (over, flag, words) in cases {
        for path in [None, Some(file.as_path())] {
            let err = Config::load(path, &laid(over), &flag_name).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("invalid value for {flag}: ")),
                "{shown}"
            );
            assert!(shown.contains(words), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_value_laid_over_is_still_checked_and_errors_keep_their_line() {
    let dir = temp_dir("config-replaced");
    let path = dir.join("monitor.toml");
    std::fs::write(
        &path,
        "[capture]\ntop = 3\n[detection.per_source]\npps = 0\n",
    )
    .unwrap();
    let over = laid("detection.per_source.pps = 9000");
    let err = Config::load(Some(&path), &over, &flag_name)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("monitor.toml, line 4, field `detection.per_source.pps`"),
        "{err}"
    );
    std::fs::write(&path, "[capture]\ntop = 3\nbackend = \"fast\"\n").unwrap();
    let err = Config::load(Some(&path), &over, &flag_name)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("monitor.toml, line 3, field `capture.backend`: unknown variant `fast`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn paths_laid_over_stay_as_given() {
    let dir = temp_dir("config-paths");
    let path = dir.join("monitor.toml");
    std::fs::write(
        &path,
        "[lists]\nblocklist_files = [\"a.txt\"]\nallowlist_files = [\"b.txt\"]\n[alerting]\nlog = \"alerts.log\"\n",
    )
    .unwrap();
    let over = laid("lists.blocklist_files = [\"c.txt\"]\nexport.path = \"stats.csv\"");
    let config = Config::load(Some(&path), &over, &flag_name).unwrap();
    assert_eq!(config.lists.blocklist_files, [PathBuf::from("c.txt")]);
    assert_eq!(config.lists.allowlist_files, [dir.join("b.txt")]);
    assert_eq!(config.alerting.log, Some(dir.join("alerts.log")));
    assert_eq!(config.export.path, Some(PathBuf::from("stats.csv")));
    std::fs::remove_dir_all(&dir).unwrap();
}
