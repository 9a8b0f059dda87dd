//! For the load benchmarks: trafgen (Debian's netsniff-ng) flooding from inside a
//! `TestNet` namespace, and what a process used, read from /proc.

use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::netns::TestNet;

/// A trafgen packet configuration for frames from the namespace to the host end:
/// `ipv4` and `l4` are trafgen's own header functions (see `man trafgen`).
pub fn trafgen_config(net: &TestNet, ipv4: &str, l4: &str) -> Result<String> {
    let host_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", net.host_if))
        .with_context(|| format!("failed to read the MAC address of {}", net.host_if))?;
    Ok(format!(
        "{{ eth(da={}), ipv4(da={}, {ipv4}), {l4} }}\n",
        host_mac.trim(),
        net.host_v4
    ))
}

/// trafgen sending `config` out of the namespace's end of the veth, as fast as it
/// can on one CPU, until [`Trafgen::stop`].
pub struct Trafgen {
    child: Child,
    config: PathBuf,
}

impl Trafgen {
    pub fn start(net: &TestNet, config: &str) -> Result<Self> {
        crate::require_tool("trafgen");
        let path = std::env::temp_dir().join(format!("monitor-bench-{}.trafgen", net.ns));
        std::fs::write(&path, config).context("failed to write the trafgen configuration")?;
        let child = net
            .command("trafgen")
            .args(["--dev", &net.ns_if, "--conf"])
            .arg(&path)
            // One process: with more, each repeats the same sequence (dinc), and the
            // second core is the one the receiving side needs.
            .args(["--cpus", "1", "--num", "0"])
            // Leave the machine's socket memory settings and IRQ affinities alone.
            .args(["--no-sock-mem", "--notouch-irq"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // A group of its own: trafgen forks its senders, and only a signal to the
            // whole group (what Ctrl-C does) stops them.
            .process_group(0)
            .spawn()
            .context("failed to start trafgen")?;
        Ok(Self {
            child,
            config: path,
        })
    }

    /// SIGINT, then waits for trafgen to end.
    pub fn stop(mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            bail!("trafgen ended by itself ({status}): {}", err.trim());
        }
        // SAFETY: our own child's process group; the child is not yet reaped.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGINT) };
        self.child.wait().context("failed to wait for trafgen")?;
        Ok(())
    }
}

impl Drop for Trafgen {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A counter of an interface, from /sys/class/net (in the namespace when `ns` is set).
pub fn link_stat(ns: Option<&str>, iface: &str, stat: &str) -> Result<u64> {
    let path = format!("/sys/class/net/{iface}/statistics/{stat}");
    let text = match ns {
        None => std::fs::read_to_string(&path)?,
        Some(ns) => {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "cat", &path])
                .output()?;
            if !out.status.success() {
                bail!("cannot read {path} in {ns}");
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    text.trim()
        .parse()
        .with_context(|| format!("{path}: {text:?}"))
}

/// The resident set of a process (`VmRSS`), in KiB.
pub fn rss_kib(pid: i32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// CPU time a process has used so far (user + system, all its threads), in seconds.
pub fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: fields follow the last `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / per_sec)
}

/// Samples a process's RSS every `period` until stopped; keeps the largest.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: i32, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, max_kib) = (Arc::clone(&stop), Arc::clone(&max_kib));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(kib) = rss_kib(pid) {
                        max_kib.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(period);
                }
            })
        };
        Self {
            stop,
            max_kib,
            thread: Some(thread),
        }
    }

    /// The largest RSS seen so far, in KiB.
    pub fn max_kib(&self) -> u64 {
        self.max_kib.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max_kib()
    }
}

/// CPU time the whole machine spent in softirq so far (the `softirq` column of
/// /proc/stat's `cpu` line), in seconds: where receive processing runs, the XDP
/// program and the copies to packet sockets included. Other work on the machine adds
/// to it too, little of it softirq.
pub fn softirq_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    // cpu user nice system idle iowait irq softirq ...
    let ticks: u64 = line
        .split_whitespace()
        .nth(7)
        .context("no softirq column in /proc/stat")?
        .parse()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / per_sec)
}

/// 1234567 as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
