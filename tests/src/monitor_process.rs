//! The monitor binary run as a child process, the way a user runs it.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The `monitor` binary next to this test executable (target/<profile>/monitor).
/// `cargo xtask test` builds it first.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/monitor
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("monitor"))
        .expect("target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p monitor`, which `cargo xtask test` does)",
        path.display()
    );
    path
}

pub struct MonitorProcess {
    child: Child,
    lines: Receiver<Value>,
    stderr: Receiver<String>,
    /// Every JSON line seen so far, in order.
    pub seen: Vec<Value>,
    stderr_seen: Vec<String>,
}

impl MonitorProcess {
    /// Starts `monitor --json <args>` and waits for its `start` line.
    pub fn start(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(binary())
            .arg("--json")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start the monitor")?;
        let (tx, lines) = channel();
        let stdout = child.stdout.take().context("stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("monitor printed a line that is not JSON ({e}): {line}"),
                }
            }
        });
        let (etx, stderr) = channel();
        let err = child.stderr.take().context("stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[monitor] {line}");
                let _ = etx.send(line);
            }
        });
        let mut process = Self {
            child,
            lines,
            stderr,
            seen: Vec::new(),
            stderr_seen: Vec::new(),
        };
        process.wait_for("start", Duration::from_secs(30))?;
        Ok(process)
    }

    /// The next line of the given `type`, waiting at most `timeout`.
    pub fn wait_for(&mut self, kind: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["type"] == kind {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "no `{kind}` line within {timeout:?}; stderr: {}",
                        self.stderr_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!(
                        "the monitor exited ({status}) before a `{kind}` line; stderr: {}",
                        self.stderr_text()
                    )
                }
            }
        }
    }

    fn stderr_text(&mut self) -> String {
        self.stderr_so_far().join(" | ")
    }

    /// Every line the monitor wrote to stderr so far (its log).
    pub fn stderr_so_far(&mut self) -> &[String] {
        self.stderr_seen.extend(self.stderr.try_iter());
        &self.stderr_seen
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGINT, then the `final` line, then the exit status.
    pub fn interrupt(mut self) -> Result<Value> {
        self.signal(libc::SIGINT);
        let last = self.wait_for("final", Duration::from_secs(30))?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the monitor exited with {status}");
        }
        Ok(last)
    }

    /// SIGINT, then every line up to and including `final`, then the exit status:
    /// everything the monitor printed over its whole run.
    pub fn stop_and_collect(mut self) -> Result<Vec<Value>> {
        self.signal(libc::SIGINT);
        self.wait_for("final", Duration::from_secs(30))?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the monitor exited with {status}");
        }
        Ok(std::mem::take(&mut self.seen))
    }

    /// Waits for the process to end by itself (e.g. `--duration`).
    pub fn wait_final(mut self, timeout: Duration) -> Result<Value> {
        let last = self.wait_for("final", timeout)?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the monitor exited with {status}");
        }
        Ok(last)
    }

    pub fn kill(mut self) -> Result<()> {
        self.signal(libc::SIGKILL);
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
