//! Command-line interface. Every configuration setting has a flag (listed once, in
//! `flags.rs`); a flag that is given overrides the configuration file, which overrides
//! the defaults, as a value laid over the file (`Overrides`).

mod flags;

use std::{path::PathBuf, time::Duration};

use clap::{
    ArgMatches, Args, CommandFactory as _, FromArgMatches, Parser, error::ErrorKind,
    parser::ValueSource,
};

use crate::config::{BackendKind, Config, ConfigError, XdpModeArg};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "monitor",
    version,
    about = "Network traffic monitor and DDoS detector (XDP counters at line rate)"
)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches, one field each as clap parses them"
)]
pub struct Cli {
    // First, so that the capture flags lead `--help`.
    #[command(flatten)]
    pub overrides: Overrides,

    /// Print one JSON object per line instead of human-readable lines
    #[arg(long, global = true)]
    pub json: bool,

    /// Stop cleanly after this long, e.g. 30s, 5m [default: run until SIGINT/SIGTERM]
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Configuration file: TOML, or YAML if it ends in .yml/.yaml (see monitor.example.toml)
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (defaults, file and flags) as TOML and exit
    #[arg(long)]
    pub print_config: bool,

    /// Live dashboard in the terminal (q quits, p pauses, s changes the sort, ? helps)
    #[arg(long, conflicts_with_all = ["json", "packets"])]
    pub tui: bool,

    /// Print one line per packet (time, source, destination, protocol, size, TCP flags)
    #[arg(long, conflicts_with = "json")]
    pub packets: bool,

    /// Most packet lines per second; the rest are counted as skipped
    #[arg(long, value_name = "LINES", default_value_t = crate::packets::DEFAULT_RATE,
          value_parser = clap::value_parser!(u32).range(1..), requires = "packets")]
    pub packets_rate: u32,

    /// Count and log only matching packets: `tcp|udp|icmp`, `[src|dst] host ADDR`,
    /// `[src|dst] port N`, joined by `and`, e.g. "tcp and port 443"
    #[arg(long, value_name = "EXPR", value_parser = crate::model::filter::parse)]
    pub filter: Option<crate::model::filter::Filter>,

    #[command(subcommand)]
    pub command: Option<Command>,

    // The capture settings as the flags give them, the defaults where none is given
    // (the file is not read here: `config()` is the effective configuration).
    #[arg(skip)]
    pub iface: Option<String>,
    #[arg(skip)]
    pub interval: Duration,
    #[arg(skip)]
    pub backend: BackendKind,
    #[arg(skip)]
    pub bpf: Option<String>,
    #[arg(skip)]
    pub xdp_mode: XdpModeArg,
    #[arg(skip)]
    pub max_sources: u32,
    #[arg(skip)]
    pub top: usize,
}

impl Cli {
    /// Parses the process arguments (exits with usage on error, as `Cli::parse` does)
    /// and checks the values of the flags that set a setting: use this, not
    /// `Cli::parse`.
    pub fn parse_args() -> Self {
        Self::try_parse_args_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli = Self::from_arg_matches(&matches).map_err(|err| err.format(&mut command))?;
        // The flags over the defaults alone: a bad value is refused here, naming its flag,
        // whatever the file says.
        let flagged =
            Config::load(None, cli.overrides.values(), &flags::name_of).map_err(|err| {
                clap::Error::raw(ErrorKind::ValueValidation, err).format(&mut command)
            })?;
        let capture = flagged.capture;
        cli.iface = capture.iface;
        cli.interval = capture.interval;
        cli.backend = capture.backend;
        cli.bpf = capture.bpf;
        cli.xdp_mode = capture.xdp_mode;
        cli.max_sources = capture.max_sources.get();
        cli.top = capture.top;
        Ok(cli)
    }

    /// The effective configuration: the defaults, then the file, then the flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(
            self.config.as_deref(),
            self.overrides.values(),
            &flags::name_of,
        )
    }
}

/// The flags given that set a configuration setting, as a table shaped like the file
/// (`--source-pps 9000`: `{detection = {per_source = {pps = 9000}}}`), which
/// `Config::load` lays over the file. Each flag is the setting's name prefixed by its
/// section (`--source-pps` for `detection.per_source.pps`); a list flag replaces the
/// file's list (it does not add to it), list files taking one `--blocklist-file` per
/// file. `monitor --print-config` shows the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    values: toml::Table,
}

impl Overrides {
    pub fn values(&self) -> &toml::Table {
        &self.values
    }
}

impl Args for Overrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let defaults = flags::defaults();
        flags::all().fold(cmd, |cmd, (heading, flag)| {
            cmd.arg(flag.arg(heading, &defaults))
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Overrides {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Self::default();
        overrides.update_from_arg_matches(matches)?;
        Ok(overrides)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let defaults = flags::defaults();
        for (_, flag) in flags::all() {
            if matches.value_source(flag.id()) != Some(ValueSource::CommandLine) {
                continue;
            }
            let value = flag.value(matches, &defaults).map_err(|why| {
                clap::Error::raw(
                    ErrorKind::ValueValidation,
                    format!("invalid value for --{}: {why}", flag.id()),
                )
            })?;
            flags::set(&mut self.values, flag.key(), value);
        }
        Ok(())
    }
}

/// Subcommands; without one, the monitor runs.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Bans placed by the monitor running with --mitigate on --iface (through its
    /// control socket, /run/monitor/<iface>.sock)
    #[command(subcommand)]
    Bans(BansCommand),
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum BansCommand {
    /// List the bans in place (--json: one JSON object a line)
    List,
    /// Lift a ban now; the source is banned again only if its flood holds for the
    /// confirm intervals again
    Unban { address: std::net::IpAddr },
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 1s or 250ms: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_args_from(std::iter::once("monitor").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn mitigate_alone_means_on_and_bans_takes_the_iface() {
        use crate::config::MitigateMode;
        let mode = |args: &[&str]| cli(args).config().unwrap().mitigate.mode;
        assert_eq!(mode(&[]), MitigateMode::Off);
        assert_eq!(mode(&["--mitigate"]), MitigateMode::On);
        assert_eq!(mode(&["--mitigate=on"]), MitigateMode::On);
        assert_eq!(mode(&["--mitigate=dry-run"]), MitigateMode::DryRun);
        assert_eq!(mode(&["--mitigate", "--json"]), MitigateMode::On);
        let bans = cli(&["bans", "unban", "192.0.2.9", "--iface", "veth1"]);
        assert_eq!(bans.iface.as_deref(), Some("veth1"));
        assert!(cli(&["bans", "list", "--json"]).json);
        assert_eq!(
            bans.command,
            Some(Command::Bans(BansCommand::Unban {
                address: "192.0.2.9".parse().unwrap()
            }))
        );
        assert!(
            Cli::try_parse_args_from(["monitor", "--mitigate=maybe"]).is_err(),
            "an unknown mode is refused"
        );
    }

    /// Numbers as the typed parsers read them before flags became values: TOML's other
    /// spellings are refused.
    #[test]
    #[expect(clippy::float_cmp, reason = "1 reads as exactly 1.0")]
    fn numbers_are_read_as_rust_reads_them() {
        let parse = |args: &[&str]| {
            Cli::try_parse_args_from(std::iter::once("monitor").chain(args.iter().copied()))
        };
        assert_eq!(cli(&["--top", "16"]).config().unwrap().capture.top, 16);
        assert_eq!(
            cli(&["--spike-alpha", "1"])
                .config()
                .unwrap()
                .detection
                .spike
                .alpha
                .get(),
            1.0
        );
        for refused in ["0x10", "1_000", "0o17", "16.0"] {
            assert!(parse(&["--top", refused]).is_err(), "--top {refused}");
        }
    }

    /// The capture flags keep clap defaults (for `--help` and `run.rs`); they must be
    /// the configuration's defaults, or the help would lie.
    #[test]
    fn capture_flag_defaults_are_the_config_defaults() {
        let bare = cli(&[]);
        let defaults = Config::default().capture;
        assert_eq!(bare.interval, defaults.interval);
        assert_eq!(bare.xdp_mode, defaults.xdp_mode);
        assert_eq!(bare.backend, defaults.backend);
        assert_eq!(bare.max_sources, defaults.max_sources.get());
        assert_eq!(bare.top, defaults.top);
        assert_eq!(bare.overrides, Overrides::default());
        assert_eq!(bare.config().unwrap(), Config::default());
    }

    fn leaves(config: &Config) -> Vec<(String, toml::Value)> {
        fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
            for (key, value) in table {
                match value {
                    toml::Value::Table(inner) => walk(&format!("{prefix}{key}."), inner, out),
                    other => out.push((format!("{prefix}{key}"), other.clone())),
                }
            }
        }
        let table: toml::Table = config.to_toml().unwrap().parse().unwrap();
        let mut out = Vec::new();
        walk("", &table, &mut out);
        out
    }

    #[test]
    fn precedence_is_default_then_file_then_flag() {
        let dir = std::env::temp_dir().join(format!("monitor-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("monitor.toml");
        std::fs::write(
            &file,
            "[capture]\ninterval = \"500ms\"\ntop = 9\n[detection.per_source]\npps = 8000\nicmp_pps = 700\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();

        let from_file = cli(&["--config", path]).config().unwrap();
        assert_eq!(from_file.capture.interval, Duration::from_millis(500));
        assert_eq!(from_file.capture.top, 9);
        assert_eq!(from_file.detection.per_source.pps.get(), 8_000);
        assert_eq!(
            from_file.detection.per_source.bytes_per_sec.get(),
            20_000_000
        );

        // A flag wins over the file, even when it spells the built-in default.
        let flagged = cli(&["--config", path, "--source-pps", "9000", "--interval", "1s"])
            .config()
            .unwrap();
        assert_eq!(flagged.detection.per_source.pps.get(), 9_000);
        assert_eq!(flagged.capture.interval, Duration::from_secs(1));
        assert_eq!(flagged.capture.top, 9);
        assert_eq!(flagged.detection.per_source.icmp_pps.get(), 700);

        let no_file = cli(&["--source-icmp-pps", "50"]).config().unwrap();
        assert_eq!(no_file.detection.per_source.icmp_pps.get(), 50);
        assert_eq!(no_file.capture, Config::default().capture);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Adding a setting to the configuration without a flag fails here.
    #[test]
    fn every_setting_has_a_flag() {
        #[rustfmt::skip]
        let args = [
            "--iface", "eth9", "--interval", "250ms", "--backend", "pcap", "--bpf", "udp", "--xdp-mode", "skb", "--max-sources", "1024", "--top", "3",
            "--source-pps", "1", "--source-bytes-per-sec", "2", "--source-syn-per-sec", "3",
            "--source-syn-ratio", "4.5", "--source-syn-ratio-min-syn-per-sec", "5",
            "--source-udp-pps", "6", "--source-icmp-pps", "7",
            "--host-pps", "8", "--host-bytes-per-sec", "9", "--host-syn-per-sec", "10",
            "--host-udp-pps", "11", "--host-icmp-pps", "12",
            "--spike-warmup", "5s", "--spike-alpha", "0.5", "--spike-k-sigma", "2.5",
            "--spike-sustain", "0s", "--spike-min-pps", "13", "--spike-min-bytes-per-sec", "14",
            "--port-scan-ports", "15", "--port-scan-hosts", "16", "--port-scan-window", "30s",
            "--large-download-bytes", "17",
            "--blocklist", "192.0.2.0/24,2001:db8::/32", "--blocklist-file", "a.txt", "--blocklist-file", "b.txt",
            "--allowlist", "198.51.100.7", "--allowlist-file", "c.txt",
            "--exclude-private-from-burst", "false",
            "--pcap-enabled", "false", "--pcap-dir", "/tmp/x", "--pcap-max-packets", "18",
            "--pcap-max-duration", "5s", "--pcap-snaplen", "1500", "--pcap-max-disk-bytes", "19",
            "--cooldown", "10s", "--clear-intervals", "5", "--no-color",
            "--server-name", "web-1", "--log", "alerts.log", "--json-log", "alerts.jsonl",
            "--webhook", "https://discord.com/api/webhooks/1/t", "--webhook", "generic=https://hooks.slack.com/services/a/b/c",
            "--delivery-queue", "8", "--delivery-timeout", "3s", "--delivery-retries", "1",
            "--delivery-backoff", "250ms", "--delivery-rate-per-sec", "0.5", "--delivery-burst", "2",
            "--delivery-flush-timeout", "1s",
            "--export", "stats.csv", "--metrics", "127.0.0.1:9850",
            "--no-connections", "--connections-interval", "2s", "--connections-max-per-process", "5",
            "--connections-count-inbound", "true",
            "--mitigate", "dry-run", "--mitigate-confirm-intervals", "2", "--mitigate-ban-time", "3s",
            "--mitigate-max-bans", "20", "--mitigate-allowlist", "192.0.2.1",
        ];
        let every_flag = cli(&args).config().unwrap();
        assert_eq!(every_flag.lists.blocklist.len(), 2);
        assert_eq!(every_flag.lists.blocklist_files.len(), 2);
        let defaults: std::collections::HashMap<_, _> =
            leaves(&Config::default()).into_iter().collect();
        let unchanged: Vec<_> = leaves(&every_flag)
            .into_iter()
            .filter(|(key, value)| defaults.get(key) == Some(value))
            .map(|(key, _)| key)
            .collect();
        assert!(
            unchanged.is_empty(),
            "settings no flag reached: {unchanged:?}"
        );
        assert_eq!(every_flag.capture.iface.as_deref(), Some("eth9"));
        assert_eq!(
            every_flag.export.path.as_deref(),
            Some(std::path::Path::new("stats.csv"))
        );
        assert_eq!(
            every_flag.metrics.listen,
            Some("127.0.0.1:9850".parse().unwrap())
        );
        let hooks = &every_flag.alerting.webhooks;
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].kind(), crate::config::WebhookKind::Discord);
        assert_eq!(hooks[1].kind(), crate::config::WebhookKind::Generic);
    }

    #[test]
    fn a_refused_webhook_is_not_echoed() {
        let err = Cli::try_parse_args_from([
            "monitor",
            "--webhook",
            "hooks.slack.com/services/T0/B0/s3cr3tT0ken",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid value for --webhook"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn bad_flag_values_are_refused() {
        let parse = |args: &[&str]| {
            Cli::try_parse_args_from(std::iter::once("monitor").chain(args.iter().copied()))
        };
        for args in [
            &["--source-pps", "0"][..],
            &["--host-pps", "-3"],
            &["--spike-alpha", "0"],
            &["--spike-k-sigma", "nan"],
            &["--blocklist", "10.0.0.0/40"],
            &["--port-scan-window", "0s"],
            &["--clear-intervals", "0"],
            &["--webhook", "ftp://files.example/x"],
            &["--webhook", "pager=https://alerts.example/"],
            &["--delivery-rate-per-sec", "0"],
            &["--delivery-timeout", "0s"],
            &["--connections-interval", "10ms"],
            &["--connections-max-per-process", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn a_bad_flag_value_is_refused_in_the_files_words_naming_the_flag() {
        #[rustfmt::skip]
        let cases = [
            (&["--source-pps", "0"][..], "invalid value for --source-pps: invalid value: integer `0`, expected a whole number above 0"),
            (&["--connections-interval", "10ms"], "invalid value for --connections-interval: 10ms is below the 100ms minimum"),
            (&["--top", "many"], "invalid value for --top: invalid type: string \"many\", expected a whole number"),
            (&["--mitigate-allowlist", "192.0.2.0/24,10.0.0.0/33"], "invalid value for --mitigate-allowlist: `10.0.0.0/33`: the prefix length must be 0 to 32"),
        ];
        for (args, words) in cases {
            let err =
                Cli::try_parse_args_from(std::iter::once("monitor").chain(args.iter().copied()))
                    .unwrap_err()
                    .to_string();
            assert!(err.starts_with(&format!("error: {words}\n")), "{err}");
            assert!(err.contains("Usage: monitor"), "{err}");
        }
    }

    #[test]
    fn each_setting_has_one_flag_shown_with_its_key() {
        let mut keys: Vec<_> = flags::all().map(|(_, flag)| flag.key()).collect();
        let count = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), count, "a key set by two flags");
        let help = Cli::command().render_long_help().to_string();
        for key in keys {
            assert!(
                help.contains(&format!("[config: {key}")),
                "{key} not in --help"
            );
        }
        assert!(help.contains("[default: 4000] [config: detection.per_source.pps]"));
    }
}
