//! Mitigation end to end: a real hping3 flood from a test namespace, the monitor with
//! `--mitigate` on the host end of the veth, and a UDP server on the host that counts
//! what reaches it from each source. A banned or blocklisted source reaches it no more
//! while another source still does; a ban ends after its time; the allowlist is never
//! dropped; dry-run drops nothing and counts exactly; an operator lists and lifts bans;
//! a `--filter` the traffic does not match shields no blocklisted source.
#![cfg(target_os = "linux")]

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use monitor_tests::{
    monitor_process::{MonitorProcess, binary},
    netns::TestNet,
    require_kernel, require_tool, send,
    traffic::{self, wait_for_alert_from},
};
use serde_json::Value;

const INTERVAL: &str = "250ms";
/// Generous: a loaded two-core machine running other floods in parallel.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A UDP server on the host end: datagrams received, per source address.
struct UdpCounter {
    addr: SocketAddr,
    received: Arc<Mutex<HashMap<IpAddr, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpCounter {
    fn start(ip: Ipv4Addr) -> Self {
        let socket = UdpSocket::bind((ip, 0)).expect("bind the UDP server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        *received.lock().unwrap().entry(from.ip()).or_insert(0) += 1;
                    }
                }
            })
        };
        Self {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn from(&self, ip: Ipv4Addr) -> u64 {
        self.received
            .lock()
            .unwrap()
            .get(&IpAddr::V4(ip))
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `ip` has sent `count` in all, or the deadline; returns the count.
    fn wait_for(&self, ip: Ipv4Addr, count: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.from(ip) < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.from(ip)
    }

    /// Waits until nothing more arrives from `ip` for a while (the socket's queue is
    /// drained), and returns its count.
    fn settled(&self, ip: Ipv4Addr) -> u64 {
        let mut last = self.from(ip);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.from(ip);
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for UdpCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `count` datagrams from `src` (an address of the namespace) to `dst`.
fn udp_from(net: &TestNet, src: Ipv4Addr, dst: SocketAddr, count: usize) {
    send::in_netns(&net.ns, move || {
        let socket = UdpSocket::bind((src, 0))?;
        for _ in 0..count {
            socket.send_to(&[0u8; 32], dst)?;
            // Paced: the server's socket must not overflow, every datagram counts.
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    })
    .expect("send from the namespace");
}

fn start_monitor(net: &TestNet, extra: &[&str]) -> MonitorProcess {
    let mut args = vec!["--iface", net.host_if.as_str(), "--interval", INTERVAL];
    args.extend_from_slice(extra);
    MonitorProcess::start(&args).expect("start the monitor")
}

fn udp_flood(net: &TestNet, server: SocketAddr, run_for: Duration) -> traffic::Flood {
    let port = server.port().to_string();
    traffic::hping3_flood(net, &["--udp", "-p", &port], server.ip(), run_for).expect("start hping3")
}

/// The next line of `kind` about `address`.
fn wait_for_event(monitor: &mut MonitorProcess, kind: &str, address: Ipv4Addr) -> Value {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = monitor
            .wait_for(kind, left)
            .unwrap_or_else(|e| panic!("no `{kind}` of {address}: {e:#}"));
        if event["address"] == address.to_string() {
            return event;
        }
    }
}

/// What the monitor counted as dropped from `ip`, in its latest stats line.
fn dropped_in(stats: &Value, ip: Ipv4Addr) -> u64 {
    stats["dropped_sources"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["ip"] == ip.to_string()))
        .map_or(0, |d| d["packets"].as_u64().unwrap())
}

/// Waits for a stats line where `ip`'s dropped count is `expected`; returns the last
/// count seen.
fn wait_for_dropped(monitor: &mut MonitorProcess, ip: Ipv4Addr, expected: u64) -> u64 {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let mut last = 0;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(stats) = monitor.wait_for("stats", left) else {
            break;
        };
        last = dropped_in(&stats, ip);
        if last == expected {
            break;
        }
    }
    last
}

/// `ip`'s dropped count once it has stayed the same over four stats lines in a row
/// (lines read late are from before: the count they show may still grow).
fn settled_dropped(monitor: &mut MonitorProcess, ip: Ipv4Addr) -> u64 {
    let (mut last, mut same) = (u64::MAX, 0);
    while same < 4 {
        let stats = monitor.wait_for("stats", EVENT_TIMEOUT).unwrap();
        let now = dropped_in(&stats, ip);
        same = if now == last { same + 1 } else { 1 };
        last = now;
    }
    last
}

fn setup() -> (TestNet, Ipv4Addr, UdpCounter) {
    let net = TestNet::new().expect("test network");
    let second = net.add_ns_v4(3).expect("second address in the namespace");
    let server = UdpCounter::start(net.host_v4);
    (net, second, server)
}

#[test]
fn a_flooding_source_is_banned_dropped_and_released_while_another_gets_through() {
    require_kernel!();
    require_tool("hping3");
    let (net, second, server) = setup();
    let mut monitor = start_monitor(
        &net,
        &[
            "--mitigate",
            "--mitigate-confirm-intervals",
            "2",
            "--mitigate-ban-time",
            "4s",
        ],
    );
    let flood = udp_flood(&net, server.addr, Duration::from_secs(3));
    let ban = wait_for_event(&mut monitor, "ban", net.ns_v4);
    assert_eq!(ban["kind"], "ban", "{ban}");
    assert_eq!(ban["reason"], "udp_flood", "{ban}");
    assert_eq!(ban["dry_run"], false, "{ban}");
    assert_eq!(ban["ban_secs"], 4.0, "{ban}");
    assert!(
        ban["until"].is_string() && ban["since"].is_string(),
        "{ban}"
    );
    // From here on nothing from the flooding source reaches the server...
    let before = server.settled(net.ns_v4);
    assert!(before > 0, "the flood reached the server before its ban");
    udp_from(&net, net.ns_v4, server.addr, 20);
    // ...while the other source does, every datagram.
    udp_from(&net, second, server.addr, 50);
    assert_eq!(server.wait_for(second, 50, Duration::from_secs(5)), 50);
    assert_eq!(
        server.from(net.ns_v4),
        before,
        "a banned source got through"
    );
    flood.finish().expect("hping3 flooded until stopped");
    assert_eq!(
        server.settled(net.ns_v4),
        before,
        "a banned source got through"
    );

    // The ban runs out: an unban event, and the source gets through again.
    let unban = wait_for_event(&mut monitor, "unban", net.ns_v4);
    assert_eq!(unban["reason"], "expired", "{unban}");
    let after_ban = server.from(net.ns_v4);
    udp_from(&net, net.ns_v4, server.addr, 30);
    assert_eq!(
        server.wait_for(net.ns_v4, after_ban + 30, Duration::from_secs(5)),
        after_ban + 30
    );
    let last = monitor.stop_and_collect().expect("monitor stops cleanly");
    let final_line = last.iter().find(|l| l["type"] == "final").unwrap();
    assert!(
        final_line["totals"]["dropped"].as_u64().unwrap() >= 20,
        "{final_line}"
    );
    assert_eq!(final_line["mitigation"], "on");
    let stats = last.iter().rev().find(|l| l["type"] == "stats").unwrap();
    assert!(dropped_in(stats, net.ns_v4) >= 20, "{stats}");
    assert_eq!(dropped_in(stats, second), 0, "{stats}");
}

#[test]
fn an_allowlisted_flooding_source_is_alerted_on_but_never_dropped() {
    require_kernel!();
    require_tool("hping3");
    let (net, _second, server) = setup();
    let ns_v4 = net.ns_v4.to_string();
    let mut monitor = start_monitor(
        &net,
        &[
            "--mitigate",
            "--mitigate-confirm-intervals",
            "2",
            "--mitigate-allowlist",
            &ns_v4,
        ],
    );
    let flood = udp_flood(&net, server.addr, Duration::from_secs(3));
    wait_for_alert_from(&mut monitor, "udp_flood", Some(&ns_v4), EVENT_TIMEOUT)
        .expect("the flood is alerted on");
    let at_alert = server.from(net.ns_v4);
    flood.finish().expect("hping3 flooded until stopped");
    // Well past the confirm intervals: still no ban, and the server kept receiving.
    let received = server.settled(net.ns_v4);
    assert!(received > at_alert, "the server stopped receiving");
    udp_from(&net, net.ns_v4, server.addr, 20);
    assert_eq!(
        server.wait_for(net.ns_v4, received + 20, Duration::from_secs(5)),
        received + 20
    );
    let lines = monitor.stop_and_collect().expect("monitor stops cleanly");
    let bans: Vec<&Value> = lines.iter().filter(|l| l["type"] == "ban").collect();
    assert!(bans.is_empty(), "{bans:?}");
    let final_line = lines.iter().find(|l| l["type"] == "final").unwrap();
    assert_eq!(final_line["totals"]["dropped"], 0, "{final_line}");
}

#[test]
fn dry_run_drops_nothing_and_counts_exactly_what_it_would_drop() {
    require_kernel!();
    require_tool("hping3");
    let (net, second, server) = setup();
    let mut monitor = start_monitor(
        &net,
        &[
            "--mitigate=dry-run",
            "--mitigate-confirm-intervals",
            "2",
            "--mitigate-ban-time",
            "60s",
        ],
    );
    let flood = udp_flood(&net, server.addr, Duration::from_secs(2));
    let ban = wait_for_event(&mut monitor, "ban", net.ns_v4);
    assert_eq!(ban["dry_run"], true, "{ban}");
    flood.finish().expect("hping3 flooded until stopped");
    let received = server.settled(net.ns_v4);
    // The flood is over, the (dry-run) ban still on: what the source sends now is
    // counted as would-be dropped, exactly, and still delivered, every datagram.
    let counted = settled_dropped(&mut monitor, net.ns_v4);
    assert!(counted > 0, "the flood after the ban was counted");
    udp_from(&net, net.ns_v4, server.addr, 200);
    udp_from(&net, second, server.addr, 10);
    assert_eq!(
        server.wait_for(net.ns_v4, received + 200, Duration::from_secs(5)),
        received + 200,
        "dry-run dropped something"
    );
    assert_eq!(server.wait_for(second, 10, Duration::from_secs(5)), 10);
    assert_eq!(
        wait_for_dropped(&mut monitor, net.ns_v4, counted + 200),
        counted + 200
    );
    let lines = monitor.stop_and_collect().expect("monitor stops cleanly");
    let stats = lines.iter().rev().find(|l| l["type"] == "stats").unwrap();
    assert_eq!(dropped_in(stats, second), 0, "{stats}");
    assert_eq!(stats["mitigation"], "dry-run");
}

#[test]
fn a_blocklisted_source_is_dropped_exactly() {
    require_kernel!();
    blocklisted_source_dropped_exactly(&[]);
}

#[test]
fn a_filter_does_not_shield_a_blocklisted_source() {
    require_kernel!();
    // The UDP traffic is all outside the filter: not counted, but a listed source's is
    // dropped all the same.
    let final_line = blocklisted_source_dropped_exactly(&["--filter", "tcp"]);
    assert_eq!(final_line["totals"]["packets"], 0, "{final_line}");
}

/// A monitor mitigating with a second address of the namespace blocklisted (and
/// `extra` arguments): of 30 UDP datagrams from it none reaches the server, exactly 30
/// are counted dropped, while another source's 40 all get through. Returns the final
/// line.
fn blocklisted_source_dropped_exactly(extra: &[&str]) -> Value {
    let (net, second, server) = setup();
    let listed = second.to_string();
    let mut args = vec!["--mitigate", "--blocklist", &listed];
    args.extend_from_slice(extra);
    let mut monitor = start_monitor(&net, &args);
    udp_from(&net, second, server.addr, 30);
    udp_from(&net, net.ns_v4, server.addr, 40);
    assert_eq!(server.wait_for(net.ns_v4, 40, Duration::from_secs(5)), 40);
    assert_eq!(wait_for_dropped(&mut monitor, second, 30), 30);
    assert_eq!(server.from(second), 0, "a blocklisted source got through");
    let lines = monitor.stop_and_collect().expect("monitor stops cleanly");
    let final_line = lines.iter().find(|l| l["type"] == "final").unwrap().clone();
    assert_eq!(final_line["totals"]["dropped"], 30, "{final_line}");
    assert_eq!(
        final_line["totals"]["dropped_bytes"],
        30 * (14 + 20 + 8 + 32),
        "{final_line}"
    );
    final_line
}

/// `monitor bans <args> --iface <iface>`: exit success and stdout.
fn bans(net: &TestNet, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .arg("bans")
        .args(args)
        .args(["--iface", &net.host_if])
        .output()
        .expect("run monitor bans");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_operator_lists_and_lifts_bans_while_the_monitor_runs() {
    require_kernel!();
    require_tool("hping3");
    let (net, _second, server) = setup();
    let ns_v4 = net.ns_v4.to_string();
    let mut monitor = start_monitor(
        &net,
        &[
            "--mitigate",
            "--mitigate-confirm-intervals",
            "2",
            "--mitigate-ban-time",
            "5m",
        ],
    );
    let (ok, listed, _) = bans(&net, &["list"]);
    assert!(ok);
    assert_eq!(listed.trim(), "no bans");
    let flood = udp_flood(&net, server.addr, Duration::from_secs(2));
    wait_for_event(&mut monitor, "ban", net.ns_v4);
    flood.finish().expect("hping3 flooded until stopped");

    let out = Command::new(binary())
        .args(["--json", "bans", "list", "--iface", &net.host_if])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["address"], ns_v4.as_str());
    assert_eq!(lines[0]["reason"], "udp_flood");

    let before = server.settled(net.ns_v4);
    let (ok, out, err) = bans(&net, &["unban", &ns_v4]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("unbanned {ns_v4}"));
    let unban = wait_for_event(&mut monitor, "unban", net.ns_v4);
    assert_eq!(unban["reason"], "operator", "{unban}");
    let (ok, listed, _) = bans(&net, &["list"]);
    assert!(ok);
    assert_eq!(listed.trim(), "no bans");
    // The unban sticks: the source gets through, and is not banned again.
    udp_from(&net, net.ns_v4, server.addr, 20);
    assert_eq!(
        server.wait_for(net.ns_v4, before + 20, Duration::from_secs(5)),
        before + 20
    );
    let (ok, _, err) = bans(&net, &["unban", &ns_v4]);
    assert!(!ok);
    assert!(err.contains("is not banned"), "{err}");
    let lines = monitor.stop_and_collect().expect("monitor stops cleanly");
    let bans_placed = lines.iter().filter(|l| l["type"] == "ban").count();
    assert_eq!(bans_placed, 1, "banned again after the operator's unban");
}

#[test]
fn bans_without_a_running_monitor_fail_in_one_line() {
    let out = Command::new(binary())
        .args(["bans", "list", "--iface", "no-such-iface0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no monitor with mitigation on `no-such-iface0`"),
        "{err}"
    );
}
