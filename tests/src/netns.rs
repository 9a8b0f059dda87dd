//! A network namespace joined to the host by a veth pair: the test network. The
//! namespace side is the "remote" host that sends traffic; the monitor attaches to the
//! host side. Dropping the guard deletes the namespace and with it the veth pair.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where test processes record which subnet slot each holds, so that concurrent test
/// binaries (and concurrent checkouts) never pick the same names or addresses.
const SLOT_DIR: &str = "/run/monitor-tests";
/// 10.{100..250}.{0..250}: 150 × 250 subnets.
const SLOTS: u32 = 150 * 250;

/// Claims a free slot: a file created exclusively, holding our pid. A slot whose holder
/// is no longer alive (a killed test run) is taken over.
fn claim_slot() -> Result<u32> {
    static SWEEP: std::sync::Once = std::sync::Once::new();

    std::fs::create_dir_all(SLOT_DIR).with_context(|| format!("failed to create {SLOT_DIR}"))?;
    SWEEP.call_once(sweep_dead_slots);
    let pid = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let start = (pid.wrapping_mul(2_654_435_761) ^ n.wrapping_mul(40_503)) % SLOTS;
    for i in 0..SLOTS {
        let slot = (start + i) % SLOTS;
        let path = format!("{SLOT_DIR}/{slot}");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                use std::io::Write as _;
                file.write_all(pid.to_string().as_bytes())?;
                return Ok(slot);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let alive = holder
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
                // An empty file is a claim being written right now: leave it.
                if !holder.is_empty() && !alive && std::fs::remove_file(&path).is_ok() {
                    if let Ok(mut file) = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                    {
                        use std::io::Write as _;
                        file.write_all(pid.to_string().as_bytes())?;
                        return Ok(slot);
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("failed to create {path}")),
        }
    }
    bail!("no free test subnet in {SLOT_DIR}")
}

/// Removes the namespaces and veths of test runs that were killed before they could
/// clean up (their slot's holder is gone), so they do not pile up on the machine.
fn sweep_dead_slots() {
    let Ok(entries) = std::fs::read_dir(SLOT_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let holder = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let Ok(pid) = holder.trim().parse::<u32>() else {
            continue; // being written right now
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let slot = entry.file_name().to_string_lossy().into_owned();
        let _ = ip(&["netns", "del", &format!("montest-{slot}")]);
        let _ = ip(&["link", "del", &format!("mh{slot}")]);
        let _ = std::fs::remove_file(entry.path());
    }
}

pub struct TestNet {
    slot: u32,
    pub ns: String,
    /// The host end, where the monitor attaches.
    pub host_if: String,
    pub ns_if: String,
    pub host_v4: Ipv4Addr,
    pub ns_v4: Ipv4Addr,
    pub host_v6: Ipv6Addr,
    pub ns_v6: Ipv6Addr,
}

pub use sandbox::ip;

impl TestNet {
    /// A fresh namespace and veth pair with unique names and subnets, configured so
    /// that the namespace sends nothing of its own: static neighbours (no ARP or
    /// neighbour discovery), no IPv6 link-local address (no DAD, router or MLD
    /// chatter). Only what a test sends crosses the veth. The host never answers a
    /// spoofed source (`sandbox::Veth::drop_spoofed_sources`).
    pub fn new() -> Result<Self> {
        let slot = claim_slot()?;
        let tag = slot.to_string();
        let (a, b) = (100 + (slot / 250) as u8, (slot % 250) as u8);
        let net = Self {
            slot,
            ns: format!("montest-{tag}"),
            host_if: format!("mh{tag}"),
            ns_if: format!("mn{tag}"),
            host_v4: Ipv4Addr::new(10, a, b, 1),
            ns_v4: Ipv4Addr::new(10, a, b, 2),
            host_v6: format!("fd00:{a}:{b}::1").parse()?,
            ns_v6: format!("fd00:{a}:{b}::2").parse()?,
        };
        net.create().inspect_err(|_| net.destroy())?;
        Ok(net)
    }

    /// Creates the namespace and pair (`sandbox::Veth::create`): the namespace sends
    /// nothing of its own (static neighbours, no IPv6 link-local address), so only
    /// what a test sends crosses the veth, and the host never answers a spoofed source.
    fn create(&self) -> Result<()> {
        let veth = self.veth();
        // Left over from a killed run that held this slot: ours now.
        veth.remove();
        veth.create()?;
        self.wait_until_quiet()
    }

    fn veth(&self) -> sandbox::Veth {
        sandbox::Veth {
            ns: self.ns.clone(),
            host_if: self.host_if.clone(),
            ns_if: self.ns_if.clone(),
            host_v4: self.host_v4,
            ns_v4: self.ns_v4,
            v6: Some((self.host_v6, self.ns_v6)),
        }
    }

    /// The namespace's kernel still sends MLD reports for its solicited-node groups
    /// (robustness 2, within about a second of link-up) whatever we configure; wait
    /// until the host end has received nothing for a while, so tests start from silence.
    fn wait_until_quiet(&self) -> Result<()> {
        let counter = format!("/sys/class/net/{}/statistics/rx_packets", self.host_if);
        let read = || -> Result<u64> { Ok(std::fs::read_to_string(&counter)?.trim().parse()?) };
        let quiet_for = std::time::Duration::from_millis(1200);
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (mut last, mut since) = (read()?, std::time::Instant::now());
        while since.elapsed() < quiet_for {
            if std::time::Instant::now() > give_up {
                bail!("{} never went quiet", self.host_if);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = read()?;
            if now != last {
                (last, since) = (now, std::time::Instant::now());
            }
        }
        Ok(())
    }

    fn destroy(&self) {
        self.veth().remove();
        let _ = std::fs::remove_file(format!("{SLOT_DIR}/{}", self.slot));
    }

    /// One more IPv4 address on the namespace's end, `.last` in its /24 (a second
    /// source), with a static neighbour entry on the host end so the host never asks
    /// for it. Strict `rp_filter` lets it in: the /24 routes back through the veth.
    pub fn add_ns_v4(&self, last: u8) -> Result<Ipv4Addr> {
        let [a, b, c, _] = self.ns_v4.octets();
        let addr = Ipv4Addr::new(a, b, c, last);
        let mac = sandbox::mac(Some(&self.ns), &self.ns_if)?;
        ip(&[
            "-n",
            &self.ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &self.ns_if,
        ])?;
        ip(&[
            "neigh",
            "replace",
            &addr.to_string(),
            "lladdr",
            &mac,
            "dev",
            &self.host_if,
            "nud",
            "permanent",
        ])?;
        Ok(addr)
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        self.veth().command(program)
    }

    /// How many TC egress programs are attached to the host end through TCX links.
    #[cfg(target_os = "linux")]
    pub fn host_egress_programs(&self) -> Result<usize> {
        use aya::programs::{SchedClassifier, TcAttachType};
        let (_, programs) = SchedClassifier::query_tcx(&self.host_if, TcAttachType::Egress)?;
        Ok(programs.len())
    }

    /// Whether an XDP program is attached to the host end (as `ip link` reports it).
    pub fn host_has_xdp(&self) -> Result<bool> {
        let out = Command::new("ip")
            .args(["-d", "link", "show", "dev", &self.host_if])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.contains("prog/xdp") || text.contains("xdpgeneric") || text.contains(" xdp "))
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.destroy();
    }
}
