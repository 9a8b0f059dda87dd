//! `--tui` in a real terminal (tmux): the dashboard's panels under known traffic, its
//! keys, resizes, and the exact final totals printed after it exits.
#![cfg(target_os = "linux")]

use std::time::Duration;

use monitor::model::format::thousands;

use monitor_tests::{
    monitor_process::binary, netns::TestNet, require_kernel, require_tool, terminal::Tmux, traffic,
};

/// UDP datagrams hping3 sends, 200 a second.
const SENT: u64 = 1_000;

/// The number after `label` on the screen, e.g. `Packets/s now 1,234`.
fn number_after(screen: &str, label: &str) -> Option<f64> {
    let at = screen.find(label)? + label.len();
    let digits: String = screen[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// `up 12s` in the header.
fn uptime(screen: &str) -> Option<f64> {
    number_after(screen, " up ")
}

#[test]
fn the_dashboard_shows_the_traffic_answers_keys_and_prints_exact_totals() {
    require_kernel!();
    require_tool("tmux");
    require_tool("hping3");
    let net = TestNet::new().expect("test network");
    let stderr = std::env::temp_dir().join(format!("monitor-tui-{}.err", net.host_if));
    let alert_log = std::env::temp_dir().join(format!("monitor-tui-{}.log", net.host_if));
    let _ = std::fs::remove_file(&alert_log);
    // A UDP threshold under the test's 200 pps: an alert raised while the dashboard runs.
    let command = format!(
        "{} --iface {} --interval 500ms --source-udp-pps 100 --log {} --tui 2>{}; \
         echo MONITOR-EXIT $?; sleep 600",
        binary().display(),
        net.host_if,
        alert_log.display(),
        stderr.display()
    );
    let tmux = Tmux::start(&command, 120, 40).expect("tmux");
    let show = |what: &str, check: &dyn Fn(&str) -> bool| {
        tmux.wait_for(what, Duration::from_secs(20), check)
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                panic!("{e:#}\nstderr:\n{log}")
            })
    };
    let screen = show("the dashboard", &|s| s.contains("backend xdp on"));
    assert!(screen.contains(&net.host_if), "{screen}");
    for panel in [
        "Packets/s",
        "Bits/s",
        "Protocol mix",
        "Top talkers (sort: pps)",
        "Alerts: 0 active",
    ] {
        assert!(screen.contains(panel), "no {panel}:\n{screen}");
    }

    // A steady 200 pps from the namespace, 5 s.
    let mut hping3 = net.command("hping3");
    hping3
        .args(["-2", "-p", "7000", "-i", "u5000", "-c", &SENT.to_string()])
        .arg(net.host_v4.to_string());
    let sender = std::thread::spawn(move || traffic::run_tool(hping3, Duration::from_secs(60)));
    let ns_ip = net.ns_v4.to_string();
    let screen = show("the namespace as a top talker at a steady rate", &|s| {
        s.contains(&ns_ip) && number_after(s, "Packets/s now").is_some_and(|p| p >= 100.0)
    });
    let pps = number_after(&screen, "Packets/s now").unwrap();
    assert!(
        (100.0..=300.0).contains(&pps),
        "about 200 pps: {pps}\n{screen}"
    );
    assert!(
        number_after(&screen, "UDP").is_some_and(|p| p >= 100.0),
        "the protocol mix shows the UDP:\n{screen}"
    );

    // The alert in its panel, not over the screen; and in the log file as ever.
    let screen = show("the alert in the alerts panel", &|s| {
        s.contains("ACTIVE") && s.contains(&format!("udp_flood from {ns_ip}"))
    });
    assert!(
        screen
            .lines()
            .next()
            .unwrap_or("")
            .starts_with("monitor backend xdp"),
        "nothing written over the header:\n{screen}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = std::fs::read_to_string(&alert_log).unwrap_or_default();
        if logged.contains("udp_flood") || std::time::Instant::now() >= deadline {
            break logged;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        logged.contains("udp_flood"),
        "the log file has the alert: {logged}"
    );

    tmux.keys("s").unwrap();
    show("the sort by bps", &|s| s.contains("sort: bps"));
    tmux.keys("s").unwrap();
    show("the sort by SYN/s", &|s| s.contains("sort: syn"));

    tmux.keys("p").unwrap();
    let paused = show("the pause marker", &|s| s.contains("PAUSED"));
    std::thread::sleep(Duration::from_millis(1_500));
    let still = tmux.capture().unwrap();
    assert_eq!(
        uptime(&paused),
        uptime(&still),
        "frozen while paused:\n{still}"
    );
    tmux.keys("p").unwrap();
    show("the display moving again", &|s| {
        !s.contains("PAUSED") && uptime(s) > uptime(&still)
    });

    tmux.resize(70, 20).unwrap();
    show("the panels in a smaller window", &|s| {
        s.contains("Top talkers") && s.lines().count() <= 20
    });
    tmux.resize(30, 8).unwrap();
    show("the too-small notice", &|s| s.contains("too small"));
    tmux.resize(120, 40).unwrap();
    show("the panels again", &|s| s.contains("Protocol mix"));

    sender
        .join()
        .expect("sender thread")
        .expect("hping3 sent its packets");
    // Every packet counted before quitting (the footer shows the totals).
    show("every packet sent in the totals", &|s| {
        s.contains(&format!("total {} packets", thousands(SENT)))
    });
    tmux.keys("q").unwrap();
    let after = show("the final totals after exit", &|s| {
        s.contains("MONITOR-EXIT")
    });
    assert!(after.contains("MONITOR-EXIT 0"), "{after}");
    assert!(after.contains("final totals after"), "{after}");
    assert!(
        after.contains(&format!("packets {} (", thousands(SENT))),
        "exact totals:\n{after}"
    );
    assert!(
        after.contains(&format!("udp {}", thousands(SENT))),
        "{after}"
    );
    assert!(
        !after.contains("Protocol mix"),
        "the dashboard is gone:\n{after}"
    );
    let _ = std::fs::remove_file(&stderr);
    let _ = std::fs::remove_file(&alert_log);
}

#[test]
fn the_dashboard_without_a_terminal_is_refused_before_anything_starts() {
    // stdout is a pipe here: refused with one line, before the interface is touched.
    let out = std::process::Command::new(binary())
        .args(["--iface", "lo", "--tui"])
        .output()
        .expect("run the monitor");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: --tui needs a terminal on stdout; use the plain or --json output instead"
    );
}
