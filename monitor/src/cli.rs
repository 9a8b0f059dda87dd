//! Command-line interface. Every configuration setting has a flag here; a flag that is
//! given overrides the configuration file, which overrides the defaults.

use std::{
    num::{NonZeroU32, NonZeroU64},
    path::PathBuf,
    time::Duration,
};

use crate::{
    config::{
        BackendKind, Config, ConfigError, Fraction, MIN_INTERVAL, MitigateMode, Positive,
        WebhookConfig, XdpModeArg,
    },
    detect::lists::Cidr,
};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, parser::ValueSource};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "monitor",
    version,
    about = "Network traffic monitor and DDoS detector (XDP counters at line rate)"
)]
pub struct Cli {
    /// Interface to watch [default: the interface of the default route]
    #[arg(short, long, global = true)]
    pub iface: Option<String>,

    /// How often to poll the counters and print a line (100ms at least), e.g. 1s, 250ms
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Print one JSON object per line instead of human-readable lines
    #[arg(long, global = true)]
    pub json: bool,

    /// Stop cleanly after this long, e.g. 30s, 5m [default: run until SIGINT/SIGTERM]
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// What counts the packets: XDP (Linux, BPF rights), libpcap, or the interface's own counters; auto takes the best this host allows
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,

    /// Capture filter for the pcap backend, in libpcap's syntax, e.g. "tcp or udp or icmp" [default: every packet]
    #[arg(long, value_name = "FILTER")]
    pub bpf: Option<String>,

    /// XDP attach mode: native (driver) with a fallback to skb, or force one
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,

    /// Size of the per-source table in the kernel (sources tracked at once, LRU)
    #[arg(long, default_value_t = monitor_common::DEFAULT_MAX_SOURCES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sources: u32,

    /// How many top sources each stats line lists
    #[arg(long, default_value_t = 5)]
    pub top: usize,

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
    #[arg(long, value_name = "EXPR", value_parser = crate::filter::parse)]
    pub filter: Option<crate::filter::Filter>,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub overrides: Overrides,
}

impl Cli {
    /// Parses the process arguments (exits with usage on error, as `Cli::parse` does)
    /// and records which capture flags were given: use this, not `Cli::parse`, so that a
    /// flag left at its default does not mask the configuration file.
    pub fn parse_args() -> Self {
        Self::try_parse_args_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let o = &mut cli.overrides;
        o.iface = cli.iface.clone();
        o.interval = given("interval").then_some(cli.interval);
        o.backend = given("backend").then_some(cli.backend);
        o.bpf = cli.bpf.clone();
        o.xdp_mode = given("xdp_mode").then_some(cli.xdp_mode);
        o.max_sources = given("max_sources")
            .then(|| NonZeroU32::new(cli.max_sources))
            .flatten();
        o.top = given("top").then_some(cli.top);
        Ok(cli)
    }

    /// The effective configuration: the defaults, then the file, then the flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.overrides.apply(&mut config);
        Ok(config)
    }
}

/// One optional value per configuration setting; those given replace the file's. Their
/// defaults are the configuration's (`monitor --print-config` shows them).
/// List flags replace the file's list (they do not add to it). Each flag is the
/// setting's name in the file prefixed by its section (`--source-pps` for
/// `detection.per_source.pps`), list files taking one `--blocklist-file` per file.
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    // The capture settings have their own flags above (`--iface`, `--interval`, ...);
    // `Cli::try_parse_args_from` copies them here when they were given.
    #[arg(skip)]
    pub iface: Option<String>,
    #[arg(skip)]
    pub interval: Option<Duration>,
    #[arg(skip)]
    pub backend: Option<BackendKind>,
    #[arg(skip)]
    pub bpf: Option<String>,
    #[arg(skip)]
    pub xdp_mode: Option<XdpModeArg>,
    #[arg(skip)]
    pub max_sources: Option<NonZeroU32>,
    #[arg(skip)]
    pub top: Option<usize>,

    /// Packets per second from one source [config: detection.per_source.pps]
    #[arg(long, value_name = "PPS", help_heading = "Per-source thresholds")]
    pub source_pps: Option<NonZeroU64>,
    /// Bytes per second from one source [config: detection.per_source.bytes_per_sec]
    #[arg(long, value_name = "BYTES", help_heading = "Per-source thresholds")]
    pub source_bytes_per_sec: Option<NonZeroU64>,
    /// TCP SYNs per second from one source [config: detection.per_source.syn_per_sec]
    #[arg(long, value_name = "RATE", help_heading = "Per-source thresholds")]
    pub source_syn_per_sec: Option<NonZeroU64>,
    /// SYNs per SYN-ACK sent back, when the backend counts SYN-ACKs [config: detection.per_source.syn_ratio]
    #[arg(long, value_name = "RATIO", help_heading = "Per-source thresholds")]
    pub source_syn_ratio: Option<Positive>,
    /// SYN rate from which the SYN:SYN-ACK ratio applies [config: detection.per_source.syn_ratio_min_syn_per_sec]
    #[arg(long, value_name = "RATE", help_heading = "Per-source thresholds")]
    pub source_syn_ratio_min_syn_per_sec: Option<NonZeroU64>,
    /// UDP packets per second from one source [config: detection.per_source.udp_pps]
    #[arg(long, value_name = "PPS", help_heading = "Per-source thresholds")]
    pub source_udp_pps: Option<NonZeroU64>,
    /// ICMP packets per second from one source [config: detection.per_source.icmp_pps]
    #[arg(long, value_name = "PPS", help_heading = "Per-source thresholds")]
    pub source_icmp_pps: Option<NonZeroU64>,

    /// Packets per second to the whole host [config: detection.host.pps]
    #[arg(long, value_name = "PPS", help_heading = "Host-wide thresholds")]
    pub host_pps: Option<NonZeroU64>,
    /// Bytes per second to the whole host [config: detection.host.bytes_per_sec]
    #[arg(long, value_name = "BYTES", help_heading = "Host-wide thresholds")]
    pub host_bytes_per_sec: Option<NonZeroU64>,
    /// TCP SYNs per second to the whole host [config: detection.host.syn_per_sec]
    #[arg(long, value_name = "RATE", help_heading = "Host-wide thresholds")]
    pub host_syn_per_sec: Option<NonZeroU64>,
    /// UDP packets per second to the whole host [config: detection.host.udp_pps]
    #[arg(long, value_name = "PPS", help_heading = "Host-wide thresholds")]
    pub host_udp_pps: Option<NonZeroU64>,
    /// ICMP packets per second to the whole host [config: detection.host.icmp_pps]
    #[arg(long, value_name = "PPS", help_heading = "Host-wide thresholds")]
    pub host_icmp_pps: Option<NonZeroU64>,

    /// Learning time before spikes are reported [config: detection.spike.warmup]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Spike detection")]
    pub spike_warmup: Option<Duration>,
    /// Weight of one second of traffic in the baseline, 0 < alpha <= 1 [config: detection.spike.alpha]
    #[arg(long, value_name = "ALPHA", help_heading = "Spike detection")]
    pub spike_alpha: Option<Fraction>,
    /// Deviations above the mean that make a spike [config: detection.spike.k_sigma]
    #[arg(long, value_name = "K", help_heading = "Spike detection")]
    pub spike_k_sigma: Option<Positive>,
    /// How long traffic must stay above the band [config: detection.spike.sustain]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Spike detection")]
    pub spike_sustain: Option<Duration>,
    /// No spike below this many packets per second [config: detection.spike.min_pps]
    #[arg(long, value_name = "PPS", help_heading = "Spike detection")]
    pub spike_min_pps: Option<NonZeroU64>,
    /// No spike below this many bytes per second [config: detection.spike.min_bytes_per_sec]
    #[arg(long, value_name = "BYTES", help_heading = "Spike detection")]
    pub spike_min_bytes_per_sec: Option<NonZeroU64>,

    /// Distinct destination ports one source tries within the window [config: detection.port_scan.ports]
    #[arg(
        long,
        value_name = "N",
        help_heading = "Port scans and large downloads"
    )]
    pub port_scan_ports: Option<NonZeroU32>,
    /// Distinct destination hosts one source tries within the window [config: detection.port_scan.hosts]
    #[arg(
        long,
        value_name = "N",
        help_heading = "Port scans and large downloads"
    )]
    pub port_scan_hosts: Option<NonZeroU32>,
    /// Port-scan window [config: detection.port_scan.window]
    #[arg(long, value_name = "DURATION", value_parser = parse_nonzero_duration, help_heading = "Port scans and large downloads")]
    pub port_scan_window: Option<Duration>,
    /// Inbound payload bytes of one flow that make a large download [config: detection.large_download.bytes]
    #[arg(
        long,
        value_name = "BYTES",
        help_heading = "Port scans and large downloads"
    )]
    pub large_download_bytes: Option<NonZeroU64>,

    /// Blocklisted addresses or CIDR networks, comma-separated or repeated [config: lists.blocklist]
    #[arg(
        long,
        value_name = "CIDR",
        value_delimiter = ',',
        help_heading = "Address lists"
    )]
    pub blocklist: Option<Vec<Cidr>>,
    /// Blocklist files: one address or network a line, # comments (repeatable) [config: lists.blocklist_files]
    #[arg(
        long = "blocklist-file",
        value_name = "FILE",
        help_heading = "Address lists"
    )]
    pub blocklist_files: Option<Vec<PathBuf>>,
    /// Sources that never raise an alert, comma-separated or repeated [config: lists.allowlist]
    #[arg(
        long,
        value_name = "CIDR",
        value_delimiter = ',',
        help_heading = "Address lists"
    )]
    pub allowlist: Option<Vec<Cidr>>,
    /// Allowlist files (repeatable) [config: lists.allowlist_files]
    #[arg(
        long = "allowlist-file",
        value_name = "FILE",
        help_heading = "Address lists"
    )]
    pub allowlist_files: Option<Vec<PathBuf>>,
    /// Leave private and link-local sources out of pps and bandwidth alerts [config: lists.exclude_private_from_burst]
    #[arg(long, value_name = "BOOL", help_heading = "Address lists")]
    pub exclude_private_from_burst: Option<bool>,

    /// Capture the offending traffic to a pcap file on each alert [config: pcap.enabled]
    #[arg(long, value_name = "BOOL", help_heading = "Triggered capture")]
    pub pcap_enabled: Option<bool>,
    /// Directory of the capture files [config: pcap.dir]
    #[arg(long, value_name = "DIR", help_heading = "Triggered capture")]
    pub pcap_dir: Option<PathBuf>,
    /// Packets per capture [config: pcap.max_packets]
    #[arg(long, value_name = "N", help_heading = "Triggered capture")]
    pub pcap_max_packets: Option<NonZeroU32>,
    /// Longest capture [config: pcap.max_duration]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Triggered capture")]
    pub pcap_max_duration: Option<Duration>,
    /// Bytes kept of each packet, 1 to 4096 [config: pcap.snaplen]
    #[arg(long, value_name = "BYTES", help_heading = "Triggered capture")]
    pub pcap_snaplen: Option<crate::config::Snaplen>,
    /// Disk space for all captures; the oldest files go first [config: pcap.max_disk_bytes]
    #[arg(long, value_name = "BYTES", help_heading = "Triggered capture")]
    pub pcap_max_disk_bytes: Option<NonZeroU64>,

    /// Quiet time before the same alert (kind and source) is raised again [config: alerting.cooldown]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Alerting")]
    pub cooldown: Option<Duration>,
    /// Consecutive clear intervals before an alert ends [config: alerting.clear_intervals]
    #[arg(long, value_name = "N", help_heading = "Alerting")]
    pub clear_intervals: Option<NonZeroU32>,
    /// No colours on stdout (there are none anyway when stdout is not a terminal, or NO_COLOR is set) [config: alerting.color = false]
    #[arg(long, help_heading = "Alerting")]
    pub no_color: bool,

    /// The name webhooks show for this machine [default: the hostname] [config: alerting.server_name]
    #[arg(long, value_name = "NAME", help_heading = "Alert sinks")]
    pub server_name: Option<String>,
    /// Append a timestamped line per alert to this file [config: alerting.log]
    #[arg(long = "log", value_name = "PATH", help_heading = "Alert sinks")]
    pub log: Option<PathBuf>,
    /// Append a JSON object per alert to this file (schema in the README) [config: alerting.json_log]
    #[arg(long = "json-log", value_name = "PATH", help_heading = "Alert sinks")]
    pub json_log: Option<PathBuf>,
    /// POST every alert to this webhook; repeatable. The kind (discord, slack, teams, generic) is inferred from the URL, or given as KIND=URL [config: alerting.webhooks]
    #[arg(long = "webhook", value_name = "[KIND=]URL", value_parser = WebhookParser, help_heading = "Alert sinks")]
    pub webhooks: Option<Vec<WebhookConfig>>,

    /// Append one stats row per interval to this file: CSV if it ends in .csv, JSON lines if .json/.jsonl [config: export.path]
    #[arg(
        long = "export",
        value_name = "PATH",
        help_heading = "Exports and metrics"
    )]
    pub export: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9850 [config: metrics.listen]
    #[arg(
        long = "metrics",
        value_name = "ADDR",
        help_heading = "Exports and metrics"
    )]
    pub metrics: Option<std::net::SocketAddr>,

    /// Notices waiting per sink before new ones are dropped (and counted) [config: alerting.delivery.queue]
    #[arg(long, value_name = "N", help_heading = "Alert delivery")]
    pub delivery_queue: Option<NonZeroU32>,
    /// Timeout of one webhook request [config: alerting.delivery.timeout]
    #[arg(long, value_name = "DURATION", value_parser = parse_nonzero_duration, help_heading = "Alert delivery")]
    pub delivery_timeout: Option<Duration>,
    /// Retries of a failed webhook request (timeout, connection error, 5xx, 429) before it may be given up for a full queue [config: alerting.delivery.retries]
    #[arg(long, value_name = "N", help_heading = "Alert delivery")]
    pub delivery_retries: Option<u32>,
    /// Wait before the first retry, doubling each time [config: alerting.delivery.backoff]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Alert delivery")]
    pub delivery_backoff: Option<Duration>,
    /// Webhook requests per second, per webhook [config: alerting.delivery.rate_per_sec]
    #[arg(long, value_name = "RATE", help_heading = "Alert delivery")]
    pub delivery_rate_per_sec: Option<Positive>,
    /// Webhook requests sent at once before the rate applies [config: alerting.delivery.burst]
    #[arg(long, value_name = "N", help_heading = "Alert delivery")]
    pub delivery_burst: Option<NonZeroU32>,
    /// On exit, how long to keep delivering queued alerts [config: alerting.delivery.flush_timeout]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Alert delivery")]
    pub delivery_flush_timeout: Option<Duration>,

    /// Do not watch the host's own sockets (no blocklisted_connection, no excessive_connections) [config: connections.enabled = false]
    #[arg(long, help_heading = "Connection monitor")]
    pub no_connections: bool,
    /// How often to list the host's sockets (100ms at least) [config: connections.interval]
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, help_heading = "Connection monitor")]
    pub connections_interval: Option<Duration>,
    /// Connections one process may hold before it is reported [config: connections.max_per_process]
    #[arg(long, value_name = "N", help_heading = "Connection monitor")]
    pub connections_max_per_process: Option<NonZeroU32>,
    /// Count connections accepted on a listening port too, not only those a process opened [config: connections.count_inbound]
    #[arg(long, value_name = "BOOL", help_heading = "Connection monitor")]
    pub connections_count_inbound: Option<bool>,
    /// Drop blocklisted sources and ban confirmed floods in XDP: on (also `--mitigate` alone), dry-run (count only) or off [config: mitigate.mode]
    #[arg(long = "mitigate", value_name = "MODE", num_args = 0..=1, default_missing_value = "on", help_heading = "Mitigation")]
    pub mitigate_mode: Option<MitigateMode>,
    /// Intervals a source's flood alert must hold before it is banned [config: mitigate.confirm_intervals]
    #[arg(long, value_name = "N", help_heading = "Mitigation")]
    pub mitigate_confirm_intervals: Option<NonZeroU32>,
    /// How long a ban lasts [config: mitigate.ban_time]
    #[arg(long, value_name = "DURATION", value_parser = parse_nonzero_duration, help_heading = "Mitigation")]
    pub mitigate_ban_time: Option<Duration>,
    /// Bans in place at most [config: mitigate.max_bans]
    #[arg(long, value_name = "N", help_heading = "Mitigation")]
    pub mitigate_max_bans: Option<NonZeroU32>,
    /// Sources never banned nor dropped, still alerted on, comma-separated or repeated [config: mitigate.allowlist]
    #[arg(
        long,
        value_name = "CIDR",
        value_delimiter = ',',
        help_heading = "Mitigation"
    )]
    pub mitigate_allowlist: Option<Vec<Cidr>>,
}

impl Overrides {
    /// Lays the given flags over `config`.
    pub fn apply(&self, config: &mut Config) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *slot = value.clone();
            }
        }
        let capture = &mut config.capture;
        if self.iface.is_some() {
            capture.iface.clone_from(&self.iface);
        }
        set(&mut capture.interval, &self.interval);
        set(&mut capture.backend, &self.backend);
        if self.bpf.is_some() {
            capture.bpf.clone_from(&self.bpf);
        }
        set(&mut capture.xdp_mode, &self.xdp_mode);
        set(&mut capture.max_sources, &self.max_sources);
        set(&mut capture.top, &self.top);

        let source = &mut config.detection.per_source;
        set(&mut source.pps, &self.source_pps);
        set(&mut source.bytes_per_sec, &self.source_bytes_per_sec);
        set(&mut source.syn_per_sec, &self.source_syn_per_sec);
        set(&mut source.syn_ratio, &self.source_syn_ratio);
        set(
            &mut source.syn_ratio_min_syn_per_sec,
            &self.source_syn_ratio_min_syn_per_sec,
        );
        set(&mut source.udp_pps, &self.source_udp_pps);
        set(&mut source.icmp_pps, &self.source_icmp_pps);

        let host = &mut config.detection.host;
        set(&mut host.pps, &self.host_pps);
        set(&mut host.bytes_per_sec, &self.host_bytes_per_sec);
        set(&mut host.syn_per_sec, &self.host_syn_per_sec);
        set(&mut host.udp_pps, &self.host_udp_pps);
        set(&mut host.icmp_pps, &self.host_icmp_pps);

        let spike = &mut config.detection.spike;
        set(&mut spike.warmup, &self.spike_warmup);
        set(&mut spike.alpha, &self.spike_alpha);
        set(&mut spike.k_sigma, &self.spike_k_sigma);
        set(&mut spike.sustain, &self.spike_sustain);
        set(&mut spike.min_pps, &self.spike_min_pps);
        set(&mut spike.min_bytes_per_sec, &self.spike_min_bytes_per_sec);

        let scan = &mut config.detection.port_scan;
        set(&mut scan.ports, &self.port_scan_ports);
        set(&mut scan.hosts, &self.port_scan_hosts);
        set(&mut scan.window, &self.port_scan_window);
        set(
            &mut config.detection.large_download.bytes,
            &self.large_download_bytes,
        );

        let lists = &mut config.lists;
        set(&mut lists.blocklist, &self.blocklist);
        set(&mut lists.blocklist_files, &self.blocklist_files);
        set(&mut lists.allowlist, &self.allowlist);
        set(&mut lists.allowlist_files, &self.allowlist_files);
        set(
            &mut lists.exclude_private_from_burst,
            &self.exclude_private_from_burst,
        );

        let pcap = &mut config.pcap;
        set(&mut pcap.enabled, &self.pcap_enabled);
        set(&mut pcap.dir, &self.pcap_dir);
        set(&mut pcap.max_packets, &self.pcap_max_packets);
        set(&mut pcap.max_duration, &self.pcap_max_duration);
        set(&mut pcap.snaplen, &self.pcap_snaplen);
        set(&mut pcap.max_disk_bytes, &self.pcap_max_disk_bytes);

        let alerting = &mut config.alerting;
        set(&mut alerting.cooldown, &self.cooldown);
        set(&mut alerting.clear_intervals, &self.clear_intervals);
        if self.no_color {
            alerting.color = false;
        }
        if self.server_name.is_some() {
            alerting.server_name.clone_from(&self.server_name);
        }
        if self.log.is_some() {
            alerting.log.clone_from(&self.log);
        }
        if self.json_log.is_some() {
            alerting.json_log.clone_from(&self.json_log);
        }
        set(&mut alerting.webhooks, &self.webhooks);

        let delivery = &mut alerting.delivery;
        set(&mut delivery.queue, &self.delivery_queue);
        set(&mut delivery.timeout, &self.delivery_timeout);
        set(&mut delivery.retries, &self.delivery_retries);
        set(&mut delivery.backoff, &self.delivery_backoff);
        set(&mut delivery.rate_per_sec, &self.delivery_rate_per_sec);
        set(&mut delivery.burst, &self.delivery_burst);
        set(&mut delivery.flush_timeout, &self.delivery_flush_timeout);

        if self.export.is_some() {
            config.export.path.clone_from(&self.export);
        }
        if self.metrics.is_some() {
            config.metrics.listen = self.metrics;
        }

        let connections = &mut config.connections;
        if self.no_connections {
            connections.enabled = false;
        }
        set(&mut connections.interval, &self.connections_interval);
        set(
            &mut connections.max_per_process,
            &self.connections_max_per_process,
        );
        set(
            &mut connections.count_inbound,
            &self.connections_count_inbound,
        );
        let mitigate = &mut config.mitigate;
        set(&mut mitigate.mode, &self.mitigate_mode);
        set(
            &mut mitigate.confirm_intervals,
            &self.mitigate_confirm_intervals,
        );
        set(&mut mitigate.ban_time, &self.mitigate_ban_time);
        set(&mut mitigate.max_bans, &self.mitigate_max_bans);
        set(&mut mitigate.allowlist, &self.mitigate_allowlist);
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

/// `--webhook [KIND=]URL`. Not a plain `FromStr` parser: clap would echo a refused
/// value whole, and a webhook URL holds a secret; this one shows it redacted.
#[derive(Clone)]
struct WebhookParser;

impl clap::builder::TypedValueParser for WebhookParser {
    type Value = WebhookConfig;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<WebhookConfig, clap::Error> {
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --webhook: {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the URL is not valid UTF-8".into()))?;
        text.parse().map_err(refuse)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 1s or 250ms: {e}"))
}

fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("`{s}` must be above zero"));
    }
    Ok(d)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!("`{s}` is below the 100ms minimum"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_args_from(std::iter::once("monitor").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn mitigate_alone_means_on_and_bans_takes_the_iface() {
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
}
