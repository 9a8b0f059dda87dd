//! `cargo xtask demo`: the monitor on a sandbox network, watching a scripted story:
//! normal traffic (pings, an HTTP download), then a SYN flood (hping3) and a port scan
//! (nmap), all sent from a network namespace over a veth pair to the host end the
//! monitor watches. Nothing leaves the sandbox: the namespace has no other link, its
//! neighbours are static, and the host end drops replies to spoofed sources (strict
//! reverse-path filtering), as the test network does (tests/src/netns.rs; not reused
//! here because xtask must build before the toolchain it installs).
//!
//! The namespace, the veth pair and every process are removed on exit, Ctrl-C
//! included.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sandbox::Veth;

/// Set by SIGINT/SIGTERM: every wait below gives up, then the sandbox is removed.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn watch_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    let handler = handler as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps up to `d`, returning early (false) when asked to stop.
fn pause(d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stopped() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

pub(crate) struct DemoOptions {
    pub monitor: PathBuf,
    /// Plain coloured lines instead of the dashboard.
    pub plain: bool,
    /// Stop after this long even if the story is not over (tests).
    pub duration: Option<Duration>,
}

/// The narration: on stderr in plain mode; in a file while the dashboard owns the
/// terminal.
struct Narrator {
    file: Option<File>,
}

impl Narrator {
    fn say(&mut self, text: &str) {
        let line = format!("demo ▶ {text}\n");
        if let Some(file) = &mut self.file {
            let _ = file.write_all(line.as_bytes());
        } else {
            let mut err = std::io::stderr();
            let _ = err.write_all(line.as_bytes());
        }
    }
}

/// The namespace and veth pair (`sandbox::Veth`, as the tests' `TestNet`); removed on
/// drop.
pub(crate) struct Sandbox {
    veth: Veth,
}

impl Sandbox {
    /// Names from our pid; a /24 in 10.99.0.0/16 (the tests use 10.100 and up) that no
    /// interface here has yet.
    pub(crate) fn create() -> Result<Self> {
        let pid = std::process::id();
        let used = Command::new("ip")
            .args(["-4", "-o", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let third = (0..250u32)
            .map(|i| ((pid + i) % 250) as u8)
            .find(|b| !used.contains(&format!(" 10.99.{b}.")))
            .context("no free 10.99.x.0/24 subnet for the demo")?;
        let sandbox = Self {
            veth: Veth {
                ns: format!("mdemo-{pid}"),
                host_if: format!("mdh{pid}"),
                ns_if: format!("mdn{pid}"),
                host_v4: Ipv4Addr::new(10, 99, third, 1),
                ns_v4: Ipv4Addr::new(10, 99, third, 2),
                v6: None,
            },
        };
        sandbox
            .veth
            .create()
            .with_context(|| format!("failed to build the demo sandbox {}", sandbox.veth.ns))?;
        Ok(sandbox)
    }

    /// A command run inside the namespace.
    fn command(&self, program: &str) -> Command {
        self.veth.command(program)
    }
}

impl std::ops::Deref for Sandbox {
    type Target = Veth;

    fn deref(&self) -> &Veth {
        &self.veth
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.veth.remove();
    }
}

/// A child process killed (and reaped) on drop.
struct Running {
    child: Child,
}

impl Running {
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for it to exit, at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn quiet(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

/// A file served over HTTP from inside the namespace, on a thread that joined it.
fn serve_in_netns(ns: &str, addr: SocketAddr, body_len: usize) -> JoinHandle<Result<()>> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let netns = File::open(&path).with_context(|| format!("failed to open {path}"))?;
        // SAFETY: a valid namespace fd; setns changes only this thread's namespace.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns({path}) failed: {}", std::io::Error::last_os_error());
        }
        let listener = TcpListener::bind(addr)?;
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request)?;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {body_len}\r\nConnection: close\r\n\r\n"
        )?;
        stream.write_all(&vec![0x5a; body_len])?;
        stream.shutdown(std::net::Shutdown::Write)?;
        Ok(())
    })
}

/// GET / from `addr`; returns the bytes received (headers included).
fn download(addr: SocketAddr) -> Result<usize> {
    let until = Instant::now() + Duration::from_secs(5);
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => break stream,
            // The server thread may not be listening yet.
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
            Err(err) => return Err(err).with_context(|| format!("failed to connect to {addr}")),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body)?;
    Ok(body.len())
}

/// The alert lines of the monitor's alert log, for the closing summary.
fn alerts_in(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

pub(crate) fn run(options: &DemoOptions) -> Result<()> {
    watch_signals();
    for tool in ["ip", "hping3", "nmap"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            bail!(
                "`{tool}` is not installed: run `cargo xtask setup` (it installs the demo's tools)"
            );
        }
    }
    let help = Command::new(&options.monitor)
        .arg("--help")
        .output()
        .with_context(|| format!("failed to run {}", options.monitor.display()))?;
    let has_dashboard = String::from_utf8_lossy(&help.stdout).contains("--tui");
    let dashboard = !options.plain && has_dashboard && {
        use std::io::IsTerminal as _;
        std::io::stdout().is_terminal()
    };

    let work = std::env::temp_dir().join(format!("monitor-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)
        .with_context(|| format!("failed to create {}", work.display()))?;
    let narration = work.join("demo.log");
    let mut say = Narrator {
        file: if dashboard {
            Some(File::create(&narration)?)
        } else {
            None
        },
    };
    let deadline = options.duration.map(|d| Instant::now() + d);
    let time_left = || deadline.is_none_or(|d| Instant::now() < d);

    let sandbox = Sandbox::create()?;
    let target = sandbox.host_v4.to_string();
    let story = format!(
        "sandbox: namespace {} ({}) --veth-- {} ({}), where the monitor runs.\n\
         \x20  The story: 1. normal traffic: 5 pings and a 5 MB HTTP download (no alert)\n\
         \x20            2. a SYN flood from the namespace: hping3 --flood for 5 s (syn_flood)\n\
         \x20            3. a port scan: nmap -sS of ports 1-1000 (port_scan)\n\
         \x20  Alerts are also written to {}; captures of the attacks to {}.",
        sandbox.ns,
        sandbox.ns_v4,
        sandbox.host_if,
        sandbox.host_v4,
        work.join("alerts.log").display(),
        work.join("captures").display(),
    );
    if dashboard {
        eprintln!(
            "demo ▶ {story}\ndemo ▶ the dashboard starts in 3 s; the narration goes to {}; q quits.",
            narration.display()
        );
        pause(Duration::from_secs(3));
    }
    say.say(&story);

    let alert_log = work.join("alerts.log");
    let mut monitor_cmd = Command::new(&options.monitor);
    monitor_cmd
        .args(["--iface", &sandbox.host_if, "--interval", "500ms"])
        .arg("--log")
        .arg(&alert_log)
        .arg("--pcap-dir")
        .arg(work.join("captures"))
        .stdin(if dashboard {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    if dashboard {
        monitor_cmd.arg("--tui");
    }
    let mut monitor = Running {
        child: monitor_cmd.spawn().context("failed to start the monitor")?,
    };
    // Attached and polling: give it a moment (its start line says so in plain mode).
    pause(Duration::from_secs(2));

    let mut steps = || -> Result<()> {
        if monitor.exited() {
            bail!("the monitor stopped at start (see its message above)");
        }
        say.say(
            "1/3 normal traffic: 5 pings from the namespace, then a 5 MB HTTP download by the host",
        );
        let mut ping = sandbox.command("hping3");
        ping.args(["--icmp", "-c", "5", "-i", "u200000", &target]);
        Running {
            child: quiet(&mut ping).spawn().context("failed to start hping3")?,
        }
        .wait(Duration::from_secs(10));
        let server_addr = SocketAddr::new(sandbox.ns_v4.into(), 8080);
        let server = serve_in_netns(&sandbox.ns, server_addr, 5_000_000);
        let got = download(server_addr)?;
        let _ = server.join();
        say.say(&format!(
            "    downloaded {got} bytes from {server_addr}: normal traffic, no alert expected"
        ));
        if !pause(Duration::from_secs(3)) || !time_left() {
            return Ok(());
        }

        say.say("2/3 SYN flood: hping3 -S -p 80 --flood from the namespace for 5 s; watch for ALERT syn_flood");
        let mut flood = sandbox.command("hping3");
        flood.args(["-S", "-p", "80", "--flood", &target]);
        let mut flood = Running {
            child: quiet(&mut flood)
                .spawn()
                .context("failed to start hping3")?,
        };
        pause(Duration::from_secs(5));
        flood.signal(libc::SIGINT);
        flood.wait(Duration::from_secs(5));
        drop(flood);
        say.say("    flood over: the alert ends (ENDED) after a few quiet intervals");
        if !pause(Duration::from_secs(3)) || !time_left() {
            return Ok(());
        }

        say.say("3/3 port scan: nmap -n -Pn -sS -p 1-1000 from the namespace; watch for ALERT port_scan");
        let mut scan = sandbox.command("nmap");
        scan.args(["-n", "-Pn", "-sS", "-T4", "-p", "1-1000", &target]);
        let mut scan = Running {
            child: quiet(&mut scan).spawn().context("failed to start nmap")?,
        };
        let until = Instant::now() + Duration::from_secs(60);
        while !scan.exited() && Instant::now() < until && !stopped() {
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(scan);
        pause(Duration::from_secs(4));
        Ok(())
    };
    let story_result = steps();

    if dashboard && story_result.is_ok() && !stopped() {
        say.say("the story is over; the dashboard stays until you quit it (q)");
        while !monitor.exited() && !stopped() && time_left() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // SIGINT, as Ctrl-C would: the monitor prints its final totals and detaches.
    if !monitor.exited() {
        say.say("stopping the monitor");
        monitor.signal(libc::SIGINT);
    }
    let status = monitor.wait(Duration::from_secs(30));
    drop(monitor);
    drop(sandbox);

    let log = alerts_in(&alert_log);
    let seen = |kind: &str| log.lines().any(|l| l.contains(&format!("] {kind} from")));
    let summary = format!(
        "detected: syn_flood {}, port_scan {}; sandbox removed. Alert log: {}",
        if seen("syn_flood") { "yes" } else { "no" },
        if seen("port_scan") { "yes" } else { "no" },
        alert_log.display()
    );
    eprintln!("demo ▶ {summary}");
    if dashboard {
        eprintln!("demo ▶ narration: {}", narration.display());
    }
    story_result?;
    if status.is_none_or(|s| !s.success()) && !stopped() {
        bail!("the monitor did not stop cleanly ({status:?})");
    }
    Ok(())
}
