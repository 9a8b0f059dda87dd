//! Real traffic for the detection tests: tools (hping3, nmap) run inside a test
//! namespace, a small HTTP/1.1 server living in the namespace with a client on the host
//! side, and helpers to pick the monitor's alert lines out of its output.

use std::{
    io::{BufRead as _, BufReader, ErrorKind, Read, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{Sender, channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{monitor_process::MonitorProcess, netns::TestNet, send::spawn_in_netns};

/// Collects a child's stdout or stderr on a thread, so that a chatty tool never blocks
/// on a full pipe.
fn collect(stream: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stream) = stream {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a tool printed and how it ended.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Starts `cmd` with its output collected by two threads: (its description, the
/// child, stdout, stderr).
fn spawn_collecting(
    cmd: &mut Command,
) -> Result<(String, Child, JoinHandle<String>, JoinHandle<String>)> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{what}`"))?;
    let (out, err) = (collect(child.stdout.take()), collect(child.stderr.take()));
    Ok((what, child, out, err))
}

/// Runs `cmd` to its end; kills it and fails if it takes longer than `timeout`, and
/// fails if it exits unsuccessfully.
pub fn run_tool(mut cmd: Command, timeout: Duration) -> Result<ToolOutput> {
    let (what, mut child, out, err) = spawn_collecting(&mut cmd)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let Some(status) = status else {
        bail!("`{what}` took more than {timeout:?}; killed it. stderr: {stderr}");
    };
    if !status.success() {
        bail!(
            "`{what}` failed ({status}); stderr: {}; stdout: {}",
            stderr.trim(),
            stdout.trim()
        );
    }
    Ok(ToolOutput {
        status,
        stdout,
        stderr,
    })
}

/// A tool that runs until it is stopped (a flood): killed after `run_for`, or as soon
/// as it is dropped (a test that fails early stops its flood).
pub struct Flood {
    what: String,
    child: Arc<Mutex<Child>>,
    stop: Option<Sender<()>>,
    /// Returns whether the tool was still running when its time was up.
    timer: Option<JoinHandle<bool>>,
    stderr: Option<JoinHandle<String>>,
    stdout: Option<JoinHandle<String>>,
}

impl Flood {
    pub fn start(mut cmd: Command, run_for: Duration) -> Result<Self> {
        let (what, child, stdout, stderr) = spawn_collecting(&mut cmd)?;
        let child = Arc::new(Mutex::new(child));
        let (stop, stopped) = channel::<()>();
        let timer = {
            let child = Arc::clone(&child);
            std::thread::spawn(move || {
                let _ = stopped.recv_timeout(run_for);
                let mut child = child
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // Our own child, not yet reaped (only this thread and `finish` wait for
                // it, and `finish` waits for this thread first): the pid is still its.
                match child.try_wait() {
                    Ok(None) => child.kill().is_ok(),
                    _ => false,
                }
            })
        };
        Ok(Self {
            what,
            child,
            stop: Some(stop),
            timer: Some(timer),
            stderr: Some(stderr),
            stdout: Some(stdout),
        })
    }

    /// Waits until its time is up and it is stopped; fails if it had ended by itself
    /// before (a flood that dies early sent too little for the test to mean anything).
    pub fn finish(mut self) -> Result<()> {
        let killed = self.timer.take().is_some_and(|t| t.join().unwrap_or(false));
        let status = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .wait()?;
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        if !killed {
            bail!(
                "`{}` ended by itself ({status}) before its time; stderr: {}; stdout: {}",
                self.what,
                stderr.trim(),
                stdout.trim()
            );
        }
        Ok(())
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(timer) = self.timer.take() {
            let _ = timer.join();
        }
        let _ = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .wait();
    }
}

/// `hping3 <args> --flood <target>` from inside the namespace, for `run_for`.
pub fn hping3_flood(
    net: &TestNet,
    args: &[&str],
    target: IpAddr,
    run_for: Duration,
) -> Result<Flood> {
    let mut cmd = net.command("hping3");
    cmd.args(args).arg("--flood").arg(target.to_string());
    Flood::start(cmd, run_for)
}

/// `hping3 <args> <target>` from inside the namespace, to its end (give it a `-c`).
pub fn hping3(net: &TestNet, args: &[&str], target: IpAddr) -> Result<ToolOutput> {
    let mut cmd = net.command("hping3");
    cmd.args(args).arg(target.to_string());
    run_tool(cmd, Duration::from_secs(30))
}

/// `nmap -n -Pn <args> <target>` from inside the namespace (no DNS, no host discovery:
/// only the scan itself crosses the link), to its end. Checks that nmap saw the host.
pub fn nmap(net: &TestNet, args: &[&str], target: IpAddr) -> Result<ToolOutput> {
    let mut cmd = net.command("nmap");
    cmd.args(["-n", "-Pn"]).args(args).arg(target.to_string());
    let out = run_tool(cmd, Duration::from_secs(60))?;
    if !out.stdout.contains("(1 host up)") {
        bail!("nmap did not reach {target}: {}", out.stdout);
    }
    Ok(out)
}

/// A minimal HTTP/1.1 server inside a namespace: `GET /` answers `body_len` bytes,
/// anything else 404. One connection at a time, `Connection: close`. Stops when
/// dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl HttpServer {
    pub fn start(net: &TestNet, ip: IpAddr, body_len: u64) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, bound) = channel();
        let thread = {
            let stop = Arc::clone(&stop);
            spawn_in_netns(&net.ns, move || {
                let listener = match TcpListener::bind(SocketAddr::new(ip, 0)) {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready.send(Err(anyhow::anyhow!("bind {ip}: {e}")));
                        return Ok(());
                    }
                };
                let _ = ready.send(listener.local_addr().map_err(Into::into));
                // Non-blocking accept, so the stop flag is seen.
                listener.set_nonblocking(true)?;
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false)?;
                            serve(stream, body_len)?;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            })
        };
        let addr = bound
            .recv_timeout(Duration::from_secs(10))
            .context("the HTTP server thread did not start")??;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the server and reports an error it met while serving.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => bail!("the HTTP server thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, body_len: u64) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut stream = stream;
    let is_root = request_line.split_whitespace().nth(1) == Some("/");
    if !request_line.starts_with("GET ") || !is_root {
        stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {body_len}\r\nConnection: close\r\n\r\n"
    )?;
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Let the client read to the end before the socket closes (no RST on unread data).
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(())
}

/// `GET /` from this (host) side; reads the whole body and returns its length, after
/// checking it against the `Content-Length` header.
pub fn http_get(server: SocketAddr) -> Result<u64> {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))
        .with_context(|| format!("connect to {server}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200 ") {
        bail!("GET / from {server}: {}", status.trim());
    }
    let mut length = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            bail!("GET / from {server}: the headers did not end");
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<u64>()?);
        }
    }
    let length = length.context("no Content-Length")?;
    let mut body = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf)? {
            0 => break,
            n => body += n as u64,
        }
    }
    if body != length {
        bail!("GET / from {server}: {body} body bytes, Content-Length {length}");
    }
    Ok(body)
}

/// The `alert` lines among `lines`.
pub fn alerts(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v["type"] == "alert").collect()
}

/// Waits for the first `alert` line of `kind` and returns it; fails after `timeout`,
/// listing the alerts that did come.
pub fn wait_for_alert(
    monitor: &mut MonitorProcess,
    kind: &str,
    timeout: Duration,
) -> Result<Value> {
    wait_for_alert_from(monitor, kind, None, timeout)
}

/// The first `alert` line of `kind` (and from `source`, when given).
pub fn wait_for_alert_from(
    monitor: &mut MonitorProcess,
    kind: &str,
    source: Option<&str>,
    timeout: Duration,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match monitor.wait_for("alert", left) {
            Ok(alert) if alert["kind"] == kind && source.is_none_or(|s| alert["source"] == s) => {
                return Ok(alert);
            }
            Ok(_) => {}
            Err(e) => {
                let others: Vec<String> = alerts(&monitor.seen)
                    .iter()
                    .map(|a| format!("{} from {}", a["kind"], a["source"]))
                    .collect();
                bail!("no `{kind}` alert within {timeout:?} (alerts seen: {others:?}): {e:#}");
            }
        }
    }
}
