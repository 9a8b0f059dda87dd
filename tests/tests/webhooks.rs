//! Alert delivery against a real HTTP server on loopback (`monitor_tests::http_server`):
//! the Discord, Slack, Teams and generic payloads field by field, the log files, the
//! retry after a 500, the wait a 429 asks for, a slow endpoint that holds up nothing
//! else, the count of drops when a queue is full, and URLs that never show their
//! secret. No kernel needed: nothing here loads a BPF program.

use std::{
    num::NonZeroU32,
    path::PathBuf,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use monitor::{
    config::{AlertingConfig, DeliveryConfig, WebhookConfig},
    delivery::Delivery,
    model::alert::{Alert, AlertEnd, AlertEvent, AlertKind, AlertSource, Severity, Target, Unit},
    sink::{Origin, Traffic, discord},
};
use monitor_tests::http_server::{Reply, TestServer};
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-T0KEN";

// ---- helpers -------------------------------------------------------------------

/// Every log line of this test binary, for the redaction checks.
fn logs() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    static LOGGER: OnceLock<()> = OnceLock::new();
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = format!("{} {}", record.level(), record.args());
            eprintln!("[log] {line}");
            logs().lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }
    let lines = LINES.get_or_init(|| Mutex::new(Vec::new()));
    LOGGER.get_or_init(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("install the test logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
    lines
}

fn log_lines_containing(text: &str) -> Vec<String> {
    logs()
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(text))
        .cloned()
        .collect()
}

fn origin() -> Origin {
    Origin {
        server_name: "AWS, France".into(),
        iface: "eth0".into(),
    }
}

fn hook(spec: &str) -> WebhookConfig {
    spec.parse().expect("a webhook")
}

fn config(webhooks: Vec<WebhookConfig>) -> AlertingConfig {
    AlertingConfig {
        webhooks,
        delivery: DeliveryConfig {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(100),
            flush_timeout: Duration::from_secs(5),
            ..DeliveryConfig::default()
        },
        ..AlertingConfig::default()
    }
}

fn start(config: &AlertingConfig) -> Delivery {
    logs();
    Delivery::start(config, origin()).expect("start delivery")
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn syn_flood(source: &str, severity: Severity) -> AlertEvent {
    AlertEvent::Alert(Alert {
        kind: AlertKind::SynFlood,
        severity,
        source: AlertSource::Ip(source.parse().unwrap()),
        target: Target::Interface("eth0".into()),
        value: 52_000.0,
        threshold: 500.0,
        unit: Unit::SynPerSec,
        started_at: at(1_756_933_752_012),
        message: "SYN rate 52,000 SYN/s (threshold 500 SYN/s)".into(),
        flow: None,
        connection: None,
    })
}

fn burst_end() -> AlertEvent {
    AlertEvent::AlertEnd(AlertEnd {
        kind: AlertKind::PpsBurst,
        severity: Severity::Critical,
        source: AlertSource::Many,
        target: Target::Interface("eth0".into()),
        peak_value: 600_000.0,
        threshold: 50_000.0,
        unit: Unit::Pps,
        started_at: at(1_756_933_752_012),
        ended_at: at(1_756_933_794_012),
        duration_secs: 42.0,
        flow: None,
        connection: None,
    })
}

const TRAFFIC: Traffic = Traffic {
    pps: 52_310.4,
    bits_per_sec: 26_800_000.0,
};

/// The value of the embed field `name`.
fn field(embed: &Value, name: &str) -> Value {
    embed["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {embed}"))["value"]
        .clone()
}

const WAIT: Duration = Duration::from_secs(10);

// ---- payloads ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::unreadable_literal,
    reason = "an RGB colour reads as its six hex digits"
)]
async fn discord_gets_a_red_embed_then_a_capture_note() {
    let server = TestServer::start(vec![]).await;
    let url = server.url(&format!("/api/webhooks/123/{SECRET}"));
    let delivery = start(&config(vec![hook(&format!("discord={url}"))]));

    delivery.alert(&syn_flood("192.0.2.9", Severity::Critical), Some(TRAFFIC));
    delivery.capture_written(
        AlertKind::SynFlood,
        AlertSource::Ip("192.0.2.9".parse().unwrap()),
        &PathBuf::from("captures/syn_flood_192.0.2.9_20250903T210912Z.pcap"),
        10_000,
    );
    let got = server.wait_for(2, WAIT).await;

    let alert = &got[0];
    assert_eq!(alert.method, "POST");
    assert_eq!(alert.path, format!("/api/webhooks/123/{SECRET}"));
    assert_eq!(alert.header("content-type"), Some("application/json"));
    let body = alert.json();
    assert_eq!(body["username"], "monitor");
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
    let embed = &body["embeds"][0];
    assert_eq!(embed["title"], "CRITICAL: SYN flood from 192.0.2.9");
    assert_eq!(embed["color"], discord::RED);
    assert_eq!(embed["color"], 0xE74C3C);
    assert_eq!(
        embed["description"],
        "SYN rate 52,000 SYN/s (threshold 500 SYN/s)"
    );
    assert_eq!(embed["author"]["name"], "AWS, France");
    assert_eq!(embed["footer"]["text"], "monitor on AWS, France (eth0)");
    assert_eq!(embed["timestamp"], "2025-09-03T21:09:12.012Z");
    assert_eq!(field(embed, "Server"), "AWS, France");
    assert_eq!(field(embed, "Interface"), "eth0");
    assert_eq!(field(embed, "Kind"), "syn_flood");
    assert_eq!(field(embed, "Severity"), "critical");
    assert_eq!(field(embed, "Source"), "192.0.2.9");
    assert_eq!(field(embed, "Target"), "eth0");
    assert_eq!(field(embed, "Value"), "52,000 SYN/s (threshold 500 SYN/s)");
    assert_eq!(field(embed, "PPS"), "52,310");
    assert_eq!(field(embed, "Bandwidth"), "26.8 Mbit/s");

    let note = got[1].json();
    let embed = &note["embeds"][0];
    assert_eq!(embed["title"], "Capture written: SYN flood from 192.0.2.9");
    assert_eq!(embed["color"], discord::GREY);
    assert_eq!(
        embed["description"],
        "10,000 packets written to `captures/syn_flood_192.0.2.9_20250903T210912Z.pcap`"
    );
    assert_eq!(
        field(embed, "File"),
        "captures/syn_flood_192.0.2.9_20250903T210912Z.pcap"
    );
    assert_eq!(field(embed, "Packets"), "10,000");

    let stats = delivery.shutdown().await;
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (
            stats[0].delivered,
            stats[0].failed,
            stats[0].dropped,
            stats[0].pending
        ),
        (2, 0, 0, 0)
    );
    assert_eq!(stats[0].kind, "discord");
    assert!(!stats[0].target.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_text_and_blocks() {
    let server = TestServer::start(vec![]).await;
    let delivery = start(&config(vec![hook(&format!(
        "slack={}",
        server.url("/services/T0/B0/x")
    ))]));
    delivery.alert(&syn_flood("192.0.2.9", Severity::High), Some(TRAFFIC));
    delivery.alert(&burst_end(), None);
    let got = server.wait_for(2, WAIT).await;

    let body = got[0].json();
    assert_eq!(
        body["text"],
        ":rotating_light: HIGH: SYN flood from 192.0.2.9 on AWS, France (eth0): SYN rate 52,000 SYN/s (threshold 500 SYN/s)"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[0]["text"]["text"],
        ":rotating_light: HIGH: SYN flood from 192.0.2.9"
    );
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(
        blocks[1]["text"],
        json!({"type": "mrkdwn", "text": "SYN rate 52,000 SYN/s (threshold 500 SYN/s)"})
    );
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "mrkdwn");
            f["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        fields,
        [
            "*Server*\nAWS, France",
            "*Interface*\neth0",
            "*Kind*\nsyn_flood",
            "*Severity*\nhigh",
            "*Source*\n192.0.2.9",
            "*Target*\neth0",
            "*Value*\n52,000 SYN/s (threshold 500 SYN/s)",
            "*PPS*\n52,310",
            "*Bandwidth*\n26.8 Mbit/s",
        ]
    );
    assert_eq!(blocks[3]["type"], "context");
    assert_eq!(
        blocks[3]["elements"][0]["text"],
        "monitor on AWS, France (eth0) · 2025-09-03T21:09:12Z"
    );

    let end = got[1].json();
    assert_eq!(
        end["blocks"][0]["text"]["text"],
        ":white_check_mark: Ended: Packet-rate burst from many"
    );
    assert_eq!(
        end["blocks"][1]["text"]["text"],
        "ended after 42s, peak 600,000 pps (threshold 50,000 pps), critical at worst"
    );
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_an_adaptive_card() {
    let server = TestServer::start(vec![]).await;
    let delivery = start(&config(vec![hook(&format!(
        "teams={}",
        server.url("/webhookb2/a@b/IncomingWebhook/c/d")
    ))]));
    delivery.alert(&syn_flood("192.0.2.9", Severity::Critical), Some(TRAFFIC));
    let body = server.wait_for(1, WAIT).await[0].json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["summary"], "CRITICAL: SYN flood from 192.0.2.9");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(
        card["body"][0]["text"],
        "CRITICAL: SYN flood from 192.0.2.9"
    );
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(
        card["body"][1]["text"],
        "SYN rate 52,000 SYN/s (threshold 500 SYN/s)"
    );
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert_eq!(facts[0], json!({"title": "Server", "value": "AWS, France"}));
    assert_eq!(facts[2], json!({"title": "Kind", "value": "syn_flood"}));
    assert_eq!(facts[4], json!({"title": "Source", "value": "192.0.2.9"}));
    assert_eq!(facts[7], json!({"title": "PPS", "value": "52,310"}));
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_webhook_and_json_log_carry_the_same_record_and_the_log_file_its_line() {
    let dir = std::env::temp_dir().join(format!("monitor-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, json_log) = (dir.join("alerts.log"), dir.join("alerts.jsonl"));
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&json_log);
    std::fs::write(&log, "an earlier line\n").unwrap(); // appended to, not replaced

    let server = TestServer::start(vec![]).await;
    // Inferred: a loopback URL is generic.
    let mut alerting = config(vec![hook(&server.url("/hook"))]);
    alerting.log = Some(log.clone());
    alerting.json_log = Some(json_log.clone());
    let delivery = start(&alerting);
    delivery.alert(&syn_flood("192.0.2.9", Severity::High), Some(TRAFFIC));
    delivery.alert(&burst_end(), None);
    let got = server.wait_for(2, WAIT).await;
    let stats = delivery.shutdown().await;
    let kinds: Vec<_> = stats.iter().map(|s| (s.kind, s.delivered)).collect();
    assert_eq!(kinds, [("log", 2), ("json_log", 2), ("generic", 2)]);

    let record = got[0].json();
    assert_eq!(record["type"], "alert");
    assert_eq!(record["time"], "2025-09-03T21:09:12.012Z");
    assert_eq!(record["timestamp"], "2025-09-03 21:09:12");
    assert_eq!(record["server"], "AWS, France");
    assert_eq!(record["iface"], "eth0");
    assert_eq!(record["kind"], "syn_flood");
    assert_eq!(record["severity"], "high");
    assert_eq!(record["source"], "192.0.2.9");
    assert_eq!(record["target"], "eth0");
    assert_eq!(record["value"], 52_000.0);
    assert_eq!(record["threshold"], 500.0);
    assert_eq!(record["unit"], "syn_per_sec");
    assert_eq!(record["started_at"], "2025-09-03T21:09:12.012Z");
    assert_eq!(record["pps"], 52_310.4);
    assert_eq!(record["bps"], 26_800_000.0);
    assert_eq!(record["pid"], Value::Null);
    assert_eq!(record["local_ip"], Value::Null);
    assert_eq!(record["local_port"], Value::Null);
    assert_eq!(record["remote_ip"], "192.0.2.9");
    assert_eq!(record["remote_port"], Value::Null);
    assert_eq!(record["reason"], "SYN flood");
    let end = got[1].json();
    assert_eq!(end["type"], "alert_end");
    assert_eq!(end["source"], "many");
    assert_eq!(end["peak_value"], 600_000.0);
    assert_eq!(end["duration_secs"], 42.0);

    // The JSON log holds the same records, one per line.
    let lines: Vec<Value> = std::fs::read_to_string(&json_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, [record, end]);

    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "an earlier line\n\
         2025-09-03 21:09:12,012 WARNING [HIGH] syn_flood from 192.0.2.9 on eth0: SYN rate 52,000 SYN/s (threshold 500 SYN/s) | 52,310 pps, 26.8 Mbit/s\n\
         2025-09-03 21:09:54,012 INFO [ENDED] pps_burst from many on eth0 after 42s, peak 600,000 pps (threshold 50,000 pps), critical at worst\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_log_path_is_an_error_at_start() {
    let mut alerting = config(vec![]);
    alerting.log = Some("/nonexistent-dir/alerts.log".into());
    let err = Delivery::start(&alerting, origin()).err().expect("refused");
    assert!(
        format!("{err:#}").starts_with("failed to open the alert log /nonexistent-dir/alerts.log"),
        "{err:#}"
    );
}

// ---- retries, 429, slowness, drops ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_and_then_delivered() {
    let server = TestServer::start(vec![Reply::status(500)]).await;
    let delivery = start(&config(vec![hook(&server.url("/hook"))]));
    delivery.alert(&syn_flood("192.0.2.9", Severity::High), None);
    let got = server.wait_for(2, WAIT).await;
    assert_eq!(got[0].body, got[1].body, "the retry sends the same alert");
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(100), "backoff {gap:?}");
    let stats = delivery.shutdown().await;
    assert_eq!(
        (stats[0].delivered, stats[0].failed, stats[0].pending),
        (1, 0, 0)
    );
    assert_eq!(server.requests().len(), 2);
}

/// Past its retries, a notice is given up only when the queue behind it is full; the
/// next one is then delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_the_queue_full_end_in_a_counted_failure() {
    let server = TestServer::start(vec![Reply::status(502); 3]).await;
    let mut alerting = config(vec![hook(&server.url("/hook"))]);
    alerting.delivery.queue = NonZeroU32::new(1).unwrap();
    let delivery = start(&alerting);
    delivery.alert(&syn_flood("192.0.2.77", Severity::High), None);
    server.wait_for(1, WAIT).await; // in flight: the queue is empty again
    delivery.alert(&syn_flood("192.0.2.78", Severity::High), None);
    // The first attempt and 2 retries fail; the next request is the second alert.
    let got = server.wait_for(4, WAIT).await;
    assert!(
        got[3].json().to_string().contains("192.0.2.78"),
        "{}",
        got[3].json()
    );
    let stats = delivery.shutdown().await;
    assert_eq!((stats[0].delivered, stats[0].failed), (1, 1));
    assert_eq!(server.requests().len(), 4);
    let failures = log_lines_containing("failed to deliver the alert syn_flood from 192.0.2.77");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("HTTP 502 (gave up after 3 attempts, with the queue full behind it)"),
        "{failures:?}"
    );
}

/// An endpoint that fails for longer than the retries last: with room in the queue,
/// nothing is given up, and everything arrives once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_room_in_the_queue_retries_go_on_until_delivered() {
    let server = TestServer::start(vec![Reply::status(503); 6]).await;
    let delivery = start(&config(vec![hook(&server.url("/hook"))]));
    delivery.alert(&syn_flood("192.0.2.80", Severity::High), None);
    delivery.alert(&syn_flood("192.0.2.81", Severity::High), None);
    // 2 retries configured; the sixth failure comes on the 6th attempt, then both go.
    let got = server.wait_for(8, Duration::from_secs(15)).await;
    assert!(got[6].json().to_string().contains("192.0.2.80"));
    assert!(got[7].json().to_string().contains("192.0.2.81"));
    let stats = delivery.shutdown().await;
    assert_eq!(
        (stats[0].delivered, stats[0].failed, stats[0].dropped),
        (2, 0, 0)
    );
    let still: Vec<String> = log_lines_containing(&server.url(""))
        .into_iter()
        .filter(|l| {
            l.contains("HTTP 503; still retrying every 1m at most, while its queue has room")
        })
        .collect();
    assert_eq!(still.len(), 1, "said once: {still:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_only_after_the_wait_it_asks_for() {
    // Discord: the wait is in the JSON body, in seconds with a fraction.
    let discord = TestServer::start(vec![Reply::status(429).json(&json!({
        "message": "You are being rate limited.",
        "retry_after": 0.8,
        "global": false
    }))])
    .await;
    // Anyone else: the Retry-After header, in seconds.
    let generic = TestServer::start(vec![Reply::status(429).header("Retry-After", "1")]).await;
    let delivery = start(&config(vec![
        hook(&format!("discord={}", discord.url("/api/webhooks/1/t"))),
        hook(&generic.url("/hook")),
    ]));
    delivery.alert(&syn_flood("192.0.2.9", Severity::High), None);

    let got = discord.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(800), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "waited too long: {gap:?}");
    let got = generic.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(4), "waited too long: {gap:?}");

    let stats = delivery.shutdown().await;
    for s in &stats {
        assert_eq!((s.delivered, s.failed), (1, 0), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_delays_neither_the_caller_nor_another_sink() {
    let slow = TestServer::start(vec![Reply::no_content().after(Duration::from_secs(5)); 4]).await;
    let fast = TestServer::start(vec![]).await;
    let mut alerting = config(vec![hook(&slow.url("/slow")), hook(&fast.url("/fast"))]);
    alerting.delivery.flush_timeout = Duration::from_secs(1);
    let delivery = start(&alerting);

    delivery.alert(&syn_flood("192.0.2.1", Severity::High), None);
    slow.wait_for(1, WAIT).await; // the slow sink is now stuck for 5 s
    let started = Instant::now();
    // What the polling loop does each interval: it must return at once.
    for i in 2..=4 {
        let queued = Instant::now();
        delivery.alert(&syn_flood(&format!("192.0.2.{i}"), Severity::High), None);
        let took = queued.elapsed();
        assert!(took < Duration::from_millis(50), "alert() took {took:?}");
    }
    let got = fast.wait_for(4, WAIT).await;
    let through = started.elapsed();
    assert!(
        through < Duration::from_secs(2),
        "the fast sink waited for the slow one: {through:?}"
    );
    assert_eq!(got[3].json()["source"], "192.0.2.4");
    assert_eq!(
        slow.requests().len(),
        1,
        "the slow sink is still on its first"
    );

    // Shutdown keeps its deadline: 1 s, not the 15 s the slow sink would take.
    let stopping = Instant::now();
    let stats = delivery.shutdown().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let (slow_stats, fast_stats) = (&stats[0], &stats[1]);
    assert_eq!((fast_stats.delivered, fast_stats.pending), (4, 0));
    assert!(slow_stats.delivered <= 1, "{slow_stats:?}");
    assert_eq!(
        slow_stats.delivered + slow_stats.pending,
        4,
        "what was not delivered is counted: {slow_stats:?}"
    );
    let reported = log_lines_containing(&format!(
        "generic {}/…: {} not delivered within the 1s shutdown deadline",
        slow.url(""),
        if slow_stats.pending == 1 {
            "1 notice".to_owned()
        } else {
            format!("{} notices", slow_stats.pending)
        }
    ));
    assert_eq!(reported.len(), 1, "{reported:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_counts_and_logs() {
    let slow = TestServer::start(vec![Reply::no_content().after(Duration::from_secs(3)); 2]).await;
    let mut alerting = config(vec![hook(&slow.url("/full"))]);
    alerting.delivery.queue = NonZeroU32::new(1).unwrap();
    alerting.delivery.flush_timeout = Duration::from_millis(200);
    let delivery = start(&alerting);

    delivery.alert(&syn_flood("198.51.100.1", Severity::High), None);
    slow.wait_for(1, WAIT).await; // in flight: the queue is empty again
    for i in 2..=5 {
        delivery.alert(&syn_flood(&format!("198.51.100.{i}"), Severity::High), None);
    }
    // One waits in the queue; three had no room.
    let now = delivery.stats();
    assert_eq!((now[0].dropped, now[0].pending), (3, 2), "{now:?}");
    for i in 3..=5 {
        let lines = log_lines_containing(&format!(
            "dropped the alert syn_flood from 198.51.100.{i}: its queue is full"
        ));
        assert_eq!(lines.len(), 1, "drop of .{i} logged once: {lines:?}");
    }
    assert!(log_lines_containing("(3 dropped so far)").len() == 1);
    let stats = delivery.shutdown().await;
    assert_eq!(stats[0].dropped, 3);
    assert_eq!(stats[0].delivered + stats[0].failed + stats[0].pending, 2);
}

// ---- secrets --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_never_appear_whole_in_logs_errors_or_stats() {
    // A closed port: connection refused, retried on while the queue has room.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = format!("discord=http://127.0.0.1:{closed_port}/api/webhooks/42/{SECRET}");
    // A server that refuses the token, echoing the path the way a careless one might.
    let rejecting = TestServer::start(vec![
        Reply::status(401).json(&json!({"message": format!("bad token /api/webhooks/7/{SECRET}")})),
    ])
    .await;
    let rejected = format!(
        "discord={}?token={SECRET}",
        rejecting.url(&format!("/api/webhooks/7/{SECRET}"))
    );
    let hooks = vec![hook(&refused), hook(&rejected)];
    assert!(!format!("{hooks:?}").contains(SECRET));
    let mut alerting = config(hooks);
    alerting.delivery.retries = 1;
    alerting.delivery.backoff = Duration::from_millis(50);
    alerting.delivery.flush_timeout = Duration::from_millis(300);
    let delivery = start(&alerting);
    delivery.alert(&syn_flood("203.0.113.9", Severity::High), None);
    rejecting.wait_for(1, WAIT).await;
    let refused_name = format!("discord http://127.0.0.1:{closed_port}/api/webhooks/…");
    let still_retrying = format!("{refused_name}: ");
    let deadline = Instant::now() + WAIT;
    while log_lines_containing(&still_retrying)
        .iter()
        .all(|l| !l.contains("still retrying"))
    {
        assert!(Instant::now() < deadline, "no retry of the refused webhook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = delivery.shutdown().await;

    let rejected_name = format!("discord {}/api/webhooks/…", rejecting.url(""));
    assert_eq!(stats[0].name(), refused_name);
    assert_eq!(stats[1].name(), rejected_name);
    assert_eq!((stats[0].failed, stats[0].pending), (0, 1));
    assert_eq!(stats[1].failed, 1);

    let refused_lines = log_lines_containing(&still_retrying);
    let refused_line = refused_lines
        .iter()
        .find(|l| l.contains("still retrying"))
        .unwrap();
    assert!(
        refused_line.contains("Connection refused") || refused_line.contains("connect"),
        "{refused_line}"
    );
    let not_delivered = log_lines_containing(&format!(
        "{refused_name}: 1 notice not delivered within the 300ms shutdown deadline"
    ));
    assert_eq!(not_delivered.len(), 1, "{not_delivered:?}");
    let rejected_lines = log_lines_containing(&format!(
        "{rejected_name}: failed to deliver the alert syn_flood from 203.0.113.9"
    ));
    assert_eq!(rejected_lines.len(), 1, "{rejected_lines:?}");
    let rejected_line = &rejected_lines[0];
    assert!(rejected_line.contains("HTTP 401"), "{rejected_line}");
    assert!(log_lines_containing(&format!("alerts go to {refused_name}")).len() == 1);

    let leaks = log_lines_containing(SECRET);
    assert!(leaks.is_empty(), "the secret was logged: {leaks:?}");
}

#[test]
fn print_config_shows_webhooks_redacted() {
    let out = std::process::Command::new(monitor_tests::monitor_process::binary())
        .args([
            "--print-config",
            "--webhook",
            &format!("https://discord.com/api/webhooks/1/{SECRET}"),
            "--webhook",
            &format!("generic=https://alerts.example/hook?token={SECRET}"),
        ])
        .output()
        .expect("run monitor --print-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("url = \"https://discord.com/api/webhooks/…\"\nkind = \"discord\""),
        "{text}"
    );
    assert!(
        text.contains("url = \"https://alerts.example/…\"\nkind = \"generic\""),
        "{text}"
    );

    // A refused URL is not echoed either.
    let out = std::process::Command::new(monitor_tests::monitor_process::binary())
        .args(["--webhook", &format!("discord.com/api/webhooks/1/{SECRET}")])
        .output()
        .expect("run monitor");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid value for --webhook"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
}

// ---- end to end ----------------------------------------------------------------

/// The monitor binary on a veth, a SYN flood from the namespace, and two webhooks on
/// loopback, one of which takes 5 s to answer: the alert reaches the fast one and the
/// JSON log at once, and the polling loop keeps its pace meanwhile.
#[cfg(target_os = "linux")]
#[test]
fn a_flood_alert_reaches_the_webhooks_while_a_slow_one_holds_up_nothing() {
    use std::net::{IpAddr, SocketAddr};

    use monitor_tests::{monitor_process::MonitorProcess, netns::TestNet, require_kernel, send};

    require_kernel!();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the test servers");
    let slow = runtime.block_on(TestServer::start(vec![
        Reply::no_content()
            .after(Duration::from_secs(5));
        8
    ]));
    let fast = runtime.block_on(TestServer::start(vec![]));
    let net = TestNet::new().expect("test network");
    let dir = std::env::temp_dir().join(format!("monitor-e2e-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_log = dir.join("alerts.jsonl");
    let _ = std::fs::remove_file(&json_log);
    let slow_hook = format!("generic={}", slow.url(&format!("/slow/{SECRET}")));
    let fast_hook = format!("discord={}", fast.url(&format!("/api/webhooks/9/{SECRET}")));
    let mut monitor = MonitorProcess::start(&[
        "--iface",
        &net.host_if,
        "--interval",
        "250ms",
        "--source-syn-per-sec",
        "5",
        "--server-name",
        "e2e-host",
        "--webhook",
        &slow_hook,
        "--webhook",
        &fast_hook,
        "--json-log",
        json_log.to_str().unwrap(),
        "--delivery-flush-timeout",
        "1s",
        // The first record must be the flood's: no host process's connections.
        "--no-connections",
    ])
    .expect("start the monitor");

    let dst = SocketAddr::new(IpAddr::V4(net.host_v4), 9);
    send::in_netns(&net.ns, move || send::tcp_syns(dst, 300)).expect("send SYNs");
    let alert = monitor
        .wait_for("alert", Duration::from_secs(10))
        .expect("an alert");
    assert_eq!(alert["kind"], "syn_flood");
    assert_eq!(alert["source"], net.ns_v4.to_string());

    // The Discord webhook has it within a second, with the source's traffic.
    let got = runtime.block_on(fast.wait_for(1, Duration::from_secs(2)));
    let embed = &got[0].json()["embeds"][0];
    assert_eq!(
        embed["title"].as_str().unwrap(),
        format!(
            "{}: SYN flood from {}",
            alert["severity"].as_str().unwrap().to_uppercase(),
            net.ns_v4
        )
    );
    assert_eq!(field(embed, "Server"), "e2e-host");
    assert_eq!(field(embed, "Interface"), net.host_if.as_str());
    assert!(field(embed, "PPS").as_str().is_some(), "{embed}");
    runtime.block_on(slow.wait_for(1, Duration::from_secs(2)));

    // The polling loop keeps its 250 ms pace while the slow webhook sleeps.
    for _ in 0..6 {
        monitor
            .wait_for("stats", Duration::from_secs(1))
            .expect("a stats line every interval");
    }

    let stopping = Instant::now();
    monitor.interrupt().expect("a clean stop");
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");

    let records: Vec<Value> = std::fs::read_to_string(&json_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = &records[0];
    assert_eq!(first["type"], "alert");
    assert_eq!(first["kind"], "syn_flood");
    assert_eq!(first["server"], "e2e-host");
    assert_eq!(first["remote_ip"], net.ns_v4.to_string());
    assert!(first["pps"].as_f64().unwrap() > 5.0, "{first}");
    std::fs::remove_dir_all(&dir).unwrap();
}
