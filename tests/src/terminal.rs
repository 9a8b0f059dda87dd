//! The monitor in a real terminal: a tmux server of its own (a private socket, so
//! concurrent test runs never share one) with one detached session of a fixed size,
//! driven by keys and read back with `capture-pane`. And the monitor's plain (human)
//! output read line by line.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

pub struct Tmux {
    socket: String,
    target: String,
}

impl Tmux {
    /// Starts `command` (a shell command line) in a new detached session of
    /// `width` x `height`.
    pub fn start(command: &str, width: u16, height: u16) -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Self {
            socket: format!("monitor-test-{}-{n}", std::process::id()),
            target: "monitor".into(),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "monitor",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ])?;
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("failed to run tmux")?;
        if !out.status.success() {
            bail!(
                "`tmux {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The visible text of the pane.
    pub fn capture(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", &self.target])
    }

    /// Sends keys as tmux names them (`q`, `Space`, `C-c`).
    pub fn keys(&self, keys: &str) -> Result<()> {
        self.run(&["send-keys", "-t", &self.target, keys]).map(drop)
    }

    pub fn resize(&self, width: u16, height: u16) -> Result<()> {
        self.run(&[
            "resize-window",
            "-t",
            &self.target,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ])
        .map(drop)
    }

    /// Captures the pane until `check` accepts it, for at most `timeout`; the last
    /// capture in the error otherwise.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture()?;
            if check(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                bail!("the pane did not show {what} within {timeout:?}; it shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Our own server only (its private socket).
        let _ = self.run(&["kill-server"]);
    }
}

/// The monitor's plain output: stdout and stderr lines, collected as they come.
pub struct PlainMonitor {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl PlainMonitor {
    /// Starts `monitor <args>` and waits until it says it is monitoring (attached).
    pub fn start(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(crate::monitor_process::binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start the monitor")?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().context("stdout")?;
        let lines = Arc::clone(&stdout);
        let mut readers = vec![std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        })];
        let (tx, stderr) = channel();
        let err = child.stderr.take().context("stderr")?;
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[monitor] {line}");
                let _ = tx.send(line);
            }
        }));
        let monitor = Self {
            child,
            stdout,
            stderr,
            readers,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match monitor.stderr.recv_timeout(left) {
                Ok(line) if line.contains("monitoring ") => return Ok(monitor),
                Ok(_) => {}
                Err(_) => bail!("the monitor did not start within 30s"),
            }
        }
    }

    /// Stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// SIGINT; waits for the exit and returns every stdout line.
    pub fn stop(mut self) -> Result<Vec<String>> {
        // SAFETY: our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait()?;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if !status.success() {
            bail!("the monitor exited with {status}");
        }
        Ok(self.lines())
    }
}

impl Drop for PlainMonitor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
