//! `cargo xtask check-other-systems`: type-checks the monitor for Windows from this
//! Linux machine, so that code which only builds on Linux (aya, /proc, Unix signals
//! and sockets) stays behind its `cfg`. `cargo check` links nothing, so no Windows SDK
//! is needed; the standard library is checked from source (`-Z build-std`), with the
//! compiler that has that source (the eBPF route's), and the pcap crate is told
//! libpcap's version instead of probing this host's library. `cargo xtask test` runs
//! it too, as a step of its own.
//!
//! One crate's build script compiles C for the target: ring (rustls' cryptography,
//! for the webhooks), whose C needs the target's SDK headers (Windows'), which a Linux
//! machine does not have. `cargo check` never links, so those objects are never used:
//! the C compiler for the target is `true`, its archiver a script that leaves an empty
//! archive where one is expected, and only the Rust is checked.
//!
//! macOS cannot be checked here: see [`NOT_CHECKED`].

use anyhow::{Context as _, Result, bail};

use crate::{toolchain, workspace_root};

/// An archiver that archives nothing: it creates the output file (`lib.exe`'s
/// `/OUT:x.lib`, or `ar`'s `x.a`) so that the build script finds it.
const NO_ARCHIVER: &str = r#"#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    /OUT:*|-out:*|/out:*) : > "${arg#*:}" ;;
    *.lib|*.a) [ -e "$arg" ] || : > "$arg" ;;
  esac
done
"#;

/// The systems the pcap backend is for, besides Linux, that can be checked here.
pub(crate) const TARGETS: [&str; 1] = ["x86_64-pc-windows-msvc"];

/// Why macOS is not checked. netstat2 (the connection monitor's socket listing there)
/// runs bindgen on the SDK's `libproc.h` in its build script, with no feature or cfg
/// to avoid it; the header is in no Debian package, and a hand-written stand-in would
/// check the monitor against bindings nobody ships.
pub(crate) const NOT_CHECKED: &str = "x86_64-apple-darwin is not checked here: netstat2's build \
    script needs libproc.h from Apple's SDK (check it on a Mac: cargo check -p monitor)";

/// Checks every target in [`TARGETS`]; the summary line, or which failed.
pub(crate) fn check() -> Result<String> {
    let route = toolchain::detect()
        .map_err(|missing| anyhow::anyhow!("cannot check other systems: {missing}"))?;
    // Their own target directory: the standard library built for other targets would
    // otherwise invalidate the host build's cache.
    let target_dir = workspace_root().join("target").join("other-systems");
    std::fs::create_dir_all(&target_dir)
        .with_context(|| format!("failed to create {}", target_dir.display()))?;
    let archiver = target_dir.join("no-archiver");
    std::fs::write(&archiver, NO_ARCHIVER)
        .with_context(|| format!("failed to write {}", archiver.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&archiver, std::fs::Permissions::from_mode(0o755))?;
    }
    let mut failed = Vec::new();
    for target in TARGETS {
        eprintln!("xtask: checking the monitor for {target} ({route})");
        // Through rustup: the cargo running xtask is one toolchain's binary, which
        // does not take `+toolchain`. Without rustup the route is Debian's compiler,
        // whose cargo is on PATH.
        let mut cargo = if toolchain::has_rustup() {
            let mut rustup = std::process::Command::new("rustup");
            rustup.args(["run", route.toolchain(), "cargo"]);
            rustup
        } else {
            std::process::Command::new("cargo")
        };
        let status = cargo
            .args(["check", "--package", "monitor"])
            .args(["-Zbuild-std=std,panic_abort", "--target", target])
            .current_dir(workspace_root())
            .arg("--target-dir")
            .arg(&target_dir)
            // `-Z` on a stable compiler (Debian's) and on any rustup toolchain alike.
            .env("RUSTC_BOOTSTRAP", "1")
            // What the pcap crate's build script would read from the target's libpcap.
            .env("LIBPCAP_VER", "1.10.0")
            .env(format!("CC_{}", target.replace('-', "_")), "true")
            .env(format!("AR_{}", target.replace('-', "_")), &archiver)
            .status()
            .context("failed to run cargo")?;
        if !status.success() {
            failed.push(target);
        }
    }
    if !failed.is_empty() {
        bail!("the monitor does not build for {}", failed.join(", "));
    }
    Ok(format!(
        "the monitor builds for {}; {NOT_CHECKED}",
        TARGETS.join(" and ")
    ))
}
