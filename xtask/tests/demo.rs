//! `cargo xtask demo` run non-interactively: it must show the flood and the scan being
//! detected, and leave no namespace, veth or process behind, also when interrupted
//! (Ctrl-C reaches the whole process group, as from a terminal).

use std::{
    io::{BufRead as _, BufReader, Read as _},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

/// The demo needs root (namespaces, XDP). Without it: say so and pass, except under
/// CI=true, where it fails (the rule of tests/src/lib.rs).
fn may_run(test: &str) -> bool {
    use std::io::Write as _;

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let message = format!("SKIPPED {test}: the demo needs root (namespaces and XDP)");
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "{message} (CI=true: a skipped kernel test fails the run)"
    );
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

/// target/<profile>/monitor, next to this test's directory; `cargo xtask test` builds it.
fn monitor_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("monitor"))
        .unwrap();
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p monitor`)",
        path.display()
    );
    path
}

fn demo(extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("demo")
        .arg("--plain")
        .arg("--monitor")
        .arg(monitor_binary())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The sandbox's namespace, from the demo's first line.
fn namespace_in(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("mdemo-"))
        .unwrap_or_else(|| panic!("no namespace named in: {text}"))
        .to_owned()
}

fn assert_nothing_left(ns: &str) {
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(ns), "namespace {ns} left behind: {list}");
    let pid = ns.trim_start_matches("mdemo-");
    let veth = PathBuf::from(format!("/sys/class/net/mdh{pid}"));
    assert!(!veth.exists(), "{} left behind", veth.display());
    // No tool still running in (or for) the sandbox.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(ns), "process left behind: {cmdline}");
    }
}

fn finish(mut child: Child, timeout: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the demo did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_shows_the_flood_and_the_scan_and_cleans_up() {
    if !may_run("the_demo_shows_the_flood_and_the_scan_and_cleans_up") {
        return;
    }
    let mut child = demo(&["--duration", "120s"])
        .spawn()
        .expect("start the demo");
    let mut stdout = String::new();
    let mut stderr = String::new();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_reader = std::thread::spawn(move || {
        let _ = err.read_to_string(&mut stderr);
        stderr
    });
    out.read_to_string(&mut stdout).unwrap();
    let stderr = err_reader.join().unwrap();
    let status = finish(child, Duration::from_secs(150));
    assert!(status.success(), "{status}\n{stderr}\n{stdout}");
    let alert = |kind: &str| {
        stdout
            .lines()
            .any(|l| l.contains("ALERT [") && l.contains(&format!("] {kind} from 10.99.")))
    };
    assert!(alert("syn_flood"), "no syn_flood alert:\n{stdout}");
    assert!(alert("port_scan"), "no port_scan alert:\n{stdout}");
    // Normal traffic first raised nothing: the first alert is the flood.
    let first = stdout.lines().find(|l| l.contains("ALERT [")).unwrap();
    assert!(first.contains("syn_flood"), "{stdout}");
    assert!(stdout.contains("final totals after"), "{stdout}");
    assert!(
        stderr.contains("detected: syn_flood yes, port_scan yes; sandbox removed"),
        "{stderr}"
    );
    assert_nothing_left(&namespace_in(&stderr));
}

#[test]
fn ctrl_c_during_the_flood_cleans_up() {
    if !may_run("ctrl_c_during_the_flood_cleans_up") {
        return;
    }
    // Its own process group, so that the "terminal's" SIGINT reaches the demo, the
    // monitor and the flood together, as Ctrl-C does.
    let mut child = demo(&[]).process_group(0).spawn().expect("start the demo");
    let err = lines_of(child.stderr.take().unwrap());
    let _out = lines_of(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.contains("2/3 SYN flood")) {
        assert!(Instant::now() < until, "no flood phase: {seen:?}");
        if let Ok(line) = err.recv_timeout(Duration::from_secs(1)) {
            seen.push(line);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: the group of our own child.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGINT) };
    let status = finish(child, Duration::from_secs(60));
    seen.extend(err.try_iter());
    let text = seen.join("\n");
    assert!(text.contains("sandbox removed"), "{status}\n{text}");
    assert_nothing_left(&namespace_in(&text));
}
