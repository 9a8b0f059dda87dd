//! The flags that set a configuration setting, each written once, in [`SECTIONS`]:
//! its name, its value, the setting's key and its help. From that one line come the
//! clap argument (with `[default: ...]` read from `Config::default()` and
//! `[config: KEY]` in its help) and, when the flag is given, its value in a table
//! shaped like the file (`{detection = {per_source = {pps = 9000}}}`) that
//! `Config::load` lays over the file: a flag's value is checked by the code that
//! checks the file's, and refused in the same words.

use clap::{
    Arg, ArgAction, ArgMatches, ValueEnum,
    builder::{PossibleValue, PossibleValuesParser},
};

use crate::config::{BackendKind, Config, MitigateMode, WebhookConfig, XdpModeArg, value_at};

/// A flag setting the configuration's `key`.
pub(super) struct Flag {
    long: &'static str,
    short: Option<char>,
    /// Also given after a subcommand (`monitor bans list --iface eth0`).
    global: bool,
    key: &'static str,
    takes: Takes,
    help: &'static str,
}

/// What follows the flag, and how it becomes the setting's value.
enum Takes {
    /// One value, named so in `--help`: a number or true/false where the setting's
    /// default is one, text otherwise (a duration, an address, a path, a name).
    One(&'static str),
    /// One of an enum's values; `alone`: the value of the flag given without one.
    Choice {
        name: &'static str,
        values: fn() -> Vec<PossibleValue>,
        alone: Option<&'static str>,
    },
    /// A list, replacing the file's: the flag repeated, and split at commas if `commas`.
    List { name: &'static str, commas: bool },
    /// `[KIND=]URL`, repeatable: the webhooks.
    Webhooks,
    /// No value: sets the setting (true by default) to false.
    Off,
}

const fn flag(long: &'static str, takes: Takes, key: &'static str, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        global: false,
        key,
        takes,
        help,
    }
}

const fn one(name: &'static str) -> Takes {
    Takes::One(name)
}

const fn list(name: &'static str, commas: bool) -> Takes {
    Takes::List { name, commas }
}

fn values_of<T: ValueEnum>() -> Vec<PossibleValue> {
    T::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .collect()
}

/// Every flag that sets a setting, under its `--help` heading (none: with the other
/// options).
#[rustfmt::skip]
pub(super) const SECTIONS: &[(Option<&str>, &[Flag])] = &[
    (None, &[
        Flag { short: Some('i'), global: true, ..flag("iface", one("IFACE"), "capture.iface", "Interface to watch [default: the interface of the default route]") },
        flag("interval", one("INTERVAL"), "capture.interval", "How often to poll the counters and print a line (100ms at least), e.g. 1s, 250ms"),
        flag("backend", Takes::Choice { name: "BACKEND", values: values_of::<BackendKind>, alone: None }, "capture.backend", "What counts the packets: XDP (Linux, BPF rights), libpcap, or the interface's own counters; auto takes the best this host allows"),
        flag("bpf", one("FILTER"), "capture.bpf", "Capture filter for the pcap backend, in libpcap's syntax, e.g. \"tcp or udp or icmp\" [default: every packet]"),
        flag("xdp-mode", Takes::Choice { name: "XDP_MODE", values: values_of::<XdpModeArg>, alone: None }, "capture.xdp_mode", "XDP attach mode: native (driver) with a fallback to skb, or force one"),
        flag("max-sources", one("MAX_SOURCES"), "capture.max_sources", "Size of the per-source table (sources tracked at once; when full, the least recently seen are forgotten, in the kernel per set of 8)"),
        flag("top", one("TOP"), "capture.top", "How many top sources each stats line lists"),
    ]),
    (Some("Per-source thresholds"), &[
        flag("source-pps", one("PPS"), "detection.per_source.pps", "Packets per second from one source"),
        flag("source-bytes-per-sec", one("BYTES"), "detection.per_source.bytes_per_sec", "Bytes per second from one source"),
        flag("source-syn-per-sec", one("RATE"), "detection.per_source.syn_per_sec", "TCP SYNs per second from one source"),
        flag("source-syn-ratio", one("RATIO"), "detection.per_source.syn_ratio", "SYNs per SYN-ACK sent back, when the backend counts SYN-ACKs"),
        flag("source-syn-ratio-min-syn-per-sec", one("RATE"), "detection.per_source.syn_ratio_min_syn_per_sec", "SYN rate from which the SYN:SYN-ACK ratio applies"),
        flag("source-udp-pps", one("PPS"), "detection.per_source.udp_pps", "UDP packets per second from one source"),
        flag("source-icmp-pps", one("PPS"), "detection.per_source.icmp_pps", "ICMP packets per second from one source"),
    ]),
    (Some("Host-wide thresholds"), &[
        flag("host-pps", one("PPS"), "detection.host.pps", "Packets per second to the whole host"),
        flag("host-bytes-per-sec", one("BYTES"), "detection.host.bytes_per_sec", "Bytes per second to the whole host"),
        flag("host-syn-per-sec", one("RATE"), "detection.host.syn_per_sec", "TCP SYNs per second to the whole host"),
        flag("host-udp-pps", one("PPS"), "detection.host.udp_pps", "UDP packets per second to the whole host"),
        flag("host-icmp-pps", one("PPS"), "detection.host.icmp_pps", "ICMP packets per second to the whole host"),
    ]),
    (Some("Spike detection"), &[
        flag("spike-warmup", one("DURATION"), "detection.spike.warmup", "Learning time before spikes are reported"),
        flag("spike-alpha", one("ALPHA"), "detection.spike.alpha", "Weight of one second of traffic in the baseline, 0 < alpha <= 1"),
        flag("spike-k-sigma", one("K"), "detection.spike.k_sigma", "Deviations above the mean that make a spike"),
        flag("spike-sustain", one("DURATION"), "detection.spike.sustain", "How long traffic must stay above the band"),
        flag("spike-min-pps", one("PPS"), "detection.spike.min_pps", "No spike below this many packets per second"),
        flag("spike-min-bytes-per-sec", one("BYTES"), "detection.spike.min_bytes_per_sec", "No spike below this many bytes per second"),
    ]),
    (Some("Port scans and large downloads"), &[
        flag("port-scan-ports", one("N"), "detection.port_scan.ports", "Distinct destination ports one source tries within the window"),
        flag("port-scan-hosts", one("N"), "detection.port_scan.hosts", "Distinct destination hosts one source tries within the window"),
        flag("port-scan-window", one("DURATION"), "detection.port_scan.window", "Port-scan window"),
        flag("large-download-bytes", one("BYTES"), "detection.large_download.bytes", "Inbound payload bytes of one flow that make a large download"),
    ]),
    (Some("Address lists"), &[
        flag("blocklist", list("CIDR", true), "lists.blocklist", "Blocklisted addresses or CIDR networks, comma-separated or repeated"),
        flag("blocklist-file", list("FILE", false), "lists.blocklist_files", "Blocklist files: one address or network a line, # comments (repeatable)"),
        flag("allowlist", list("CIDR", true), "lists.allowlist", "Sources that never raise an alert, comma-separated or repeated"),
        flag("allowlist-file", list("FILE", false), "lists.allowlist_files", "Allowlist files (repeatable)"),
        flag("exclude-private-from-burst", one("BOOL"), "lists.exclude_private_from_burst", "Leave private and link-local sources out of pps and bandwidth alerts"),
    ]),
    (Some("Triggered capture"), &[
        flag("pcap-enabled", one("BOOL"), "pcap.enabled", "Capture the offending traffic to a pcap file on each alert"),
        flag("pcap-dir", one("DIR"), "pcap.dir", "Directory of the capture files"),
        flag("pcap-max-packets", one("N"), "pcap.max_packets", "Packets per capture"),
        flag("pcap-max-duration", one("DURATION"), "pcap.max_duration", "Longest capture"),
        flag("pcap-snaplen", one("BYTES"), "pcap.snaplen", "Bytes kept of each packet, 1 to 4096"),
        flag("pcap-max-disk-bytes", one("BYTES"), "pcap.max_disk_bytes", "Disk space for all captures; the oldest files go first"),
    ]),
    (Some("Alerting"), &[
        flag("cooldown", one("DURATION"), "alerting.cooldown", "Quiet time before the same alert (kind and source) is raised again"),
        flag("clear-intervals", one("N"), "alerting.clear_intervals", "Consecutive clear intervals before an alert ends"),
        flag("no-color", Takes::Off, "alerting.color", "No colours on stdout (there are none anyway when stdout is not a terminal, or NO_COLOR is set)"),
    ]),
    (Some("Alert sinks"), &[
        flag("server-name", one("NAME"), "alerting.server_name", "The name webhooks show for this machine [default: the hostname]"),
        flag("log", one("PATH"), "alerting.log", "Append a timestamped line per alert to this file"),
        flag("json-log", one("PATH"), "alerting.json_log", "Append a JSON object per alert to this file (schema in docs/alerting.md)"),
        flag("webhook", Takes::Webhooks, "alerting.webhooks", "POST every alert to this webhook; repeatable. The kind (discord, slack, teams, generic) is inferred from the URL, or given as KIND=URL"),
    ]),
    (Some("Exports and metrics"), &[
        flag("export", one("PATH"), "export.path", "Append one stats row per interval to this file: CSV if it ends in .csv, JSON lines if .json/.jsonl"),
        flag("metrics", one("ADDR"), "metrics.listen", "Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9850"),
    ]),
    (Some("Alert delivery"), &[
        flag("delivery-queue", one("N"), "alerting.delivery.queue", "Notices waiting per sink before new ones are dropped (and counted)"),
        flag("delivery-timeout", one("DURATION"), "alerting.delivery.timeout", "Timeout of one webhook request"),
        flag("delivery-retries", one("N"), "alerting.delivery.retries", "Retries of a failed webhook request (timeout, connection error, 5xx, 429) before it may be given up for a full queue"),
        flag("delivery-backoff", one("DURATION"), "alerting.delivery.backoff", "Wait before the first retry, doubling each time"),
        flag("delivery-rate-per-sec", one("RATE"), "alerting.delivery.rate_per_sec", "Webhook requests per second, per webhook"),
        flag("delivery-burst", one("N"), "alerting.delivery.burst", "Webhook requests sent at once before the rate applies"),
        flag("delivery-flush-timeout", one("DURATION"), "alerting.delivery.flush_timeout", "On exit, how long to keep delivering queued alerts"),
    ]),
    (Some("Connection monitor"), &[
        flag("no-connections", Takes::Off, "connections.enabled", "Do not watch the host's own sockets (no blocklisted_connection, no excessive_connections)"),
        flag("connections-interval", one("DURATION"), "connections.interval", "How often to list the host's sockets (100ms at least)"),
        flag("connections-max-per-process", one("N"), "connections.max_per_process", "Connections one process may hold before it is reported"),
        flag("connections-count-inbound", one("BOOL"), "connections.count_inbound", "Count connections accepted on a listening port too, not only those a process opened"),
    ]),
    (Some("Mitigation"), &[
        flag("mitigate", Takes::Choice { name: "MODE", values: values_of::<MitigateMode>, alone: Some("on") }, "mitigate.mode", "Drop blocklisted sources and ban confirmed floods in XDP: on (also `--mitigate` alone), dry-run (count only) or off"),
        flag("mitigate-confirm-intervals", one("N"), "mitigate.confirm_intervals", "Intervals a source's flood alert must hold before it is banned"),
        flag("mitigate-ban-time", one("DURATION"), "mitigate.ban_time", "How long a ban lasts"),
        flag("mitigate-max-bans", one("N"), "mitigate.max_bans", "Bans in place at most"),
        flag("mitigate-allowlist", list("CIDR", true), "mitigate.allowlist", "Sources never banned nor dropped, still alerted on, comma-separated or repeated"),
    ]),
];

/// Every flag, with its heading.
pub(super) fn all() -> impl Iterator<Item = (Option<&'static str>, &'static Flag)> {
    SECTIONS
        .iter()
        .flat_map(|(heading, flags)| flags.iter().map(move |flag| (*heading, flag)))
}

/// The defaults as a table shaped like the file: what a flag's value is read as, and
/// the `[default: ...]` of its help.
pub(super) fn defaults() -> toml::Table {
    toml::Table::try_from(Config::default()).unwrap_or_default()
}

/// What names the setting at `key` in an error: its flag.
pub(super) fn name_of(key: &str) -> String {
    all().find(|(_, flag)| flag.key == key).map_or_else(
        || format!("`{key}`"),
        |(_, flag)| format!("--{}", flag.long),
    )
}

/// Sets the dotted `key` of `table`, making the sections on the way.
pub(super) fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
        }
        Some((section, rest)) => {
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(section) = section {
                set(section, rest, value);
            }
        }
    }
}

impl Flag {
    pub(super) fn id(&self) -> &'static str {
        self.long
    }

    pub(super) fn key(&self) -> &'static str {
        self.key
    }

    /// The clap argument; `defaults` is [`defaults`].
    pub(super) fn arg(&self, heading: Option<&'static str>, defaults: &toml::Table) -> Arg {
        let default = value_at(defaults, self.key);
        let mut help = self.help.to_owned();
        match (&self.takes, default.and_then(shown)) {
            (Takes::Off, _) => {
                help.push_str(&format!(" [config: {} = false]", self.key));
            }
            (_, Some(shown)) => {
                help.push_str(&format!(" [default: {shown}] [config: {}]", self.key));
            }
            (_, None) => help.push_str(&format!(" [config: {}]", self.key)),
        }
        let mut arg = Arg::new(self.long)
            .long(self.long)
            .help(help)
            .help_heading(heading)
            .global(self.global);
        if let Some(short) = self.short {
            arg = arg.short(short);
        }
        match &self.takes {
            Takes::One(name) if default.is_some_and(toml::Value::is_bool) => arg
                .value_name(name)
                .value_parser(PossibleValuesParser::new(["true", "false"])),
            Takes::One(name) => arg
                .value_name(name)
                .value_parser(clap::value_parser!(String)),
            Takes::Choice {
                name,
                values,
                alone,
            } => {
                let arg = arg
                    .value_name(name)
                    .value_parser(PossibleValuesParser::new(values()));
                match alone {
                    Some(alone) => arg.num_args(0..=1).default_missing_value(alone),
                    None => arg,
                }
            }
            Takes::List { name, commas } => {
                let arg = arg
                    .value_name(name)
                    .action(ArgAction::Append)
                    .value_parser(clap::value_parser!(String));
                if *commas {
                    arg.value_delimiter(',')
                } else {
                    arg
                }
            }
            Takes::Webhooks => arg
                .value_name("[KIND=]URL")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(String)),
            Takes::Off => arg.action(ArgAction::SetTrue),
        }
    }

    /// The setting's value, from what `matches` holds for this flag: read as the type
    /// of the default (`defaults`) where that is a number or true/false, so that the
    /// setting's own check decides on it. `Err` says why (without the value: a
    /// webhook URL holds a secret).
    pub(super) fn value(
        &self,
        matches: &ArgMatches,
        defaults: &toml::Table,
    ) -> Result<toml::Value, String> {
        // A switch holds a bool, every other flag text.
        let given = || {
            matches
                .get_many::<String>(self.long)
                .into_iter()
                .flatten()
                .map(String::as_str)
        };
        Ok(match self.takes {
            Takes::Off => toml::Value::Boolean(false),
            Takes::One(_) | Takes::Choice { .. } => {
                let text = given().next().unwrap_or_default();
                scalar(text, value_at(defaults, self.key))
            }
            Takes::List { .. } => toml::Value::Array(
                given()
                    .map(|text| toml::Value::String(text.to_owned()))
                    .collect(),
            ),
            Takes::Webhooks => toml::Value::Array(given().map(webhook).collect::<Result<_, _>>()?),
        })
    }
}

/// `text` as a number or true/false when the setting's default is one, read as Rust
/// reads numbers (`9000`, `0.5`; not TOML's `0x10` or `1_000`, which the flags never
/// took): `"2.5"` for a whole number is refused by the setting as a float, as in the
/// file. As text otherwise, which the setting checks too.
fn scalar(text: &str, default: Option<&toml::Value>) -> toml::Value {
    let number = || {
        text.parse::<i64>()
            .map(toml::Value::Integer)
            .or_else(|_| text.parse::<f64>().map(toml::Value::Float))
            .ok()
    };
    let typed = match default {
        Some(toml::Value::Integer(_) | toml::Value::Float(_)) => number(),
        Some(toml::Value::Boolean(_)) => text.parse::<bool>().ok().map(toml::Value::Boolean),
        _ => None,
    };
    typed.unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// `--webhook [KIND=]URL` as the file writes it: the URL, or `{ url, kind }`. The
/// kind is matched in any case, as the flag always took it.
fn webhook(text: &str) -> Result<toml::Value, String> {
    let hook: WebhookConfig = text.parse()?;
    let url = toml::Value::String(hook.url.expose().to_string());
    Ok(match hook.kind {
        None => url,
        Some(kind) => toml::Value::Table(toml::Table::from_iter([
            ("url".to_owned(), url),
            (
                "kind".to_owned(),
                toml::Value::String(kind.as_str().to_owned()),
            ),
        ])),
    })
}

/// A default as `--help` shows it; none for lists and tables.
fn shown(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
            Some(value.to_string())
        }
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}
