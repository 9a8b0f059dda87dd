//! A network namespace joined to the host by a veth pair, set up so that only what is
//! sent on purpose crosses it and the host never answers a spoofed source: the test
//! network (`monitor-tests`' `TestNet`) and the demo's sandbox (`cargo xtask demo`).
//! A crate of its own because xtask must build before the eBPF toolchain it installs,
//! which the tests crate needs.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// Runs `ip` (iproute2) with `args`; its stderr becomes the error.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("failed to run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The MAC address of `dev`, in namespace `netns` (`None`: the host's).
pub fn mac(netns: Option<&str>, dev: &str) -> Result<String> {
    let mut cmd = Command::new("ip");
    if let Some(netns) = netns {
        cmd.args(["-n", netns]);
    }
    let out = cmd
        .args(["link", "show", dev])
        .output()
        .context("failed to run `ip` (iproute2)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("no MAC address on {dev}"))
}

/// The names and addresses of a namespace and its veth pair.
#[derive(Clone, Debug)]
pub struct Veth {
    pub ns: String,
    /// The host end (where the monitor attaches).
    pub host_if: String,
    pub ns_if: String,
    pub host_v4: Ipv4Addr,
    pub ns_v4: Ipv4Addr,
    /// IPv6 addresses (a /64), when the pair carries IPv6 too.
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
}

impl Veth {
    /// Creates the namespace and the pair: addresses (a /24, and the /64), no IPv6
    /// link-local addresses (no DAD, router or MLD chatter), static neighbours both
    /// ways (no ARP or neighbour discovery), both ends up, and strict reverse-path
    /// filtering on the host end (see [`Veth::drop_spoofed_sources`]).
    pub fn create(&self) -> Result<()> {
        let (ns, h, m) = (self.ns.as_str(), self.host_if.as_str(), self.ns_if.as_str());
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", h, "type", "veth", "peer", "name", m, "netns", ns,
        ])?;
        ip(&["link", "set", h, "addrgenmode", "none"])?;
        ip(&["-n", ns, "link", "set", m, "addrgenmode", "none"])?;
        let (host_mac, ns_mac) = (mac(None, h)?, mac(Some(ns), m)?);
        let mut pairs = vec![(
            format!("{}/24", self.host_v4),
            format!("{}/24", self.ns_v4),
            self.host_v4.to_string(),
            self.ns_v4.to_string(),
        )];
        if let Some((host_v6, ns_v6)) = self.v6 {
            pairs.push((
                format!("{host_v6}/64"),
                format!("{ns_v6}/64"),
                host_v6.to_string(),
                ns_v6.to_string(),
            ));
        }
        for (host_net, ns_net, host_addr, ns_addr) in &pairs {
            let v6 = host_addr.contains(':');
            let nodad: &[&str] = if v6 { &["nodad"] } else { &[] };
            ip(&[&["addr", "add", host_net, "dev", h][..], nodad].concat())?;
            ip(&[&["-n", ns, "addr", "add", ns_net, "dev", m][..], nodad].concat())?;
            ip(&[
                "neigh",
                "replace",
                ns_addr,
                "lladdr",
                &ns_mac,
                "dev",
                h,
                "nud",
                "permanent",
            ])?;
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                host_addr,
                "lladdr",
                &host_mac,
                "dev",
                m,
                "nud",
                "permanent",
            ])?;
        }
        ip(&["link", "set", h, "up"])?;
        ip(&["-n", ns, "link", "set", m, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        self.drop_spoofed_sources()
    }

    /// Makes the host end drop packets whose source does not route back through it
    /// (strict reverse-path filtering), so the host's stack never answers a spoofed
    /// address: its answers (RSTs, SYN-ACKs, ICMP) would otherwise leave through the
    /// default route, out of the test network, to random addresses. XDP sees every
    /// packet before this filter. Fails, rather than let a flood's replies out, when
    /// the filter cannot be made strict.
    pub fn drop_spoofed_sources(&self) -> Result<()> {
        let conf = |name: &str| format!("/proc/sys/net/ipv4/conf/{name}/rp_filter");
        let path = conf(&self.host_if);
        std::fs::write(&path, "1").with_context(|| format!("failed to write {path}"))?;
        // The kernel applies the larger of `all` and the interface's value: 2 (loose)
        // would let any source with some route through.
        let read = |path: &str| -> Result<String> {
            Ok(std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {path}"))?
                .trim()
                .to_owned())
        };
        let (all, own) = (read(&conf("all"))?, read(&path)?);
        if own != "1" || !(all == "0" || all == "1") {
            bail!(
                "cannot make reverse-path filtering strict on {} (its rp_filter {own}, all {all}): \
                 a spoofed flood's replies would leave this host",
                self.host_if
            );
        }
        Ok(())
    }

    /// Deletes the namespace (and with it the pair), and the host end in case the
    /// namespace was already gone. Errors are ignored: it may not exist.
    pub fn remove(&self) {
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_if]);
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }
}
