//! Makes this machine able to build and test the monitor: on Debian it installs what
//! is missing (saying what), elsewhere it names exactly what to install.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::toolchain::{self, BPF_LINKER_VERSION, DEBIAN_BUILD_PACKAGES, DEBIAN_TOOLCHAIN, Route};

/// Debian packages the tests drive: real tools, real traffic; `prometheus` (with
/// `promtool`) scrapes the monitor's metrics endpoint and checks `dist/prometheus/`;
/// `tmux` is the real terminal the dashboard test drives.
pub(crate) const DEBIAN_TEST_PACKAGES: &[&str] = &[
    "iproute2",
    "hping3",
    "nmap",
    "tshark",
    "tcpdump",
    "prometheus",
    "tmux",
    // systemd-analyze checks the shipped unit; the package works without systemd as PID 1.
    "systemd",
];

/// Debian packages only the benchmarks use: fastnetmon, the detector the detection
/// latency benchmark compares with, and netsniff-ng for trafgen, the generator of the
/// scale and capture throughput benchmarks. Kept out of the tests' list so that `cargo
/// xtask test` (and CI) do not install them.
pub(crate) const DEBIAN_BENCH_PACKAGES: &[&str] = &["fastnetmon", "netsniff-ng"];

fn is_debian() -> bool {
    Path::new("/etc/debian_version").is_file()
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let sudo = !is_root();
    if sudo && Command::new("sudo").arg("-n").arg("true").status().is_err() {
        bail!(
            "missing Debian packages: {}; install them as root: apt-get install -y {}",
            packages.join(" "),
            packages.join(" ")
        );
    }
    eprintln!("xtask: installing Debian packages: {}", packages.join(" "));
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-q"])?;
    apt(&[
        &["install", "-y", "-q", "--no-install-recommends"],
        packages,
    ]
    .concat())
}

/// Installs (on Debian) what only the benchmarks use; elsewhere says what they would
/// compare with, and the benchmarks measure the monitor alone.
pub(crate) fn ensure_bench_tools() -> Result<()> {
    if !is_debian() {
        eprintln!(
            "xtask: not Debian; the detection latency benchmark compares with fastnetmon when \
             it is installed (Debian package `fastnetmon`), and the scale and capture \
             throughput benchmarks need trafgen (Debian package `netsniff-ng`)"
        );
        return Ok(());
    }
    let missing: Vec<&str> = DEBIAN_BENCH_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)?;
    // The package enables and starts a system-wide fastnetmon service (with the stock
    // configuration, which reports usage to the vendor every hour). The benchmark runs
    // its own instances; stop the service we just caused, where systemd runs.
    if missing.contains(&"fastnetmon") && Path::new("/run/systemd/system").is_dir() {
        stop_packaged_service("fastnetmon")?;
    }
    Ok(())
}

/// Stops and disables a service that installing its package started, where systemd
/// runs (the tests and benchmarks run their own instances).
fn stop_packaged_service(service: &str) -> Result<()> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    eprintln!(
        "xtask: stopping and disabling the {service} service its package started \
         (the tests and benchmarks run their own {service})"
    );
    let mut cmd = if is_root() {
        Command::new("systemctl")
    } else {
        let mut c = Command::new("sudo");
        c.arg("systemctl");
        c
    };
    run(cmd.args(["disable", "--now", service]))
}

/// Installs (on Debian) or checks (elsewhere) the eBPF toolchain, and the test tools
/// when `test_tools`; returns the route the build will take.
pub(crate) fn ensure(test_tools: bool) -> Result<Route> {
    let mut missing_before: Vec<&str> = Vec::new();
    if is_debian() {
        let mut wanted: Vec<&str> = DEBIAN_BUILD_PACKAGES.to_vec();
        if test_tools {
            wanted.extend(DEBIAN_TEST_PACKAGES);
        }
        let missing: Vec<&str> = wanted.into_iter().filter(|p| !dpkg_installed(p)).collect();
        if !missing.is_empty() {
            apt_install(&missing)?;
        }
        missing_before = missing;
    } else if test_tools {
        eprintln!(
            "xtask: not Debian; the end-to-end tests need these tools installed: {}",
            DEBIAN_TEST_PACKAGES.join(", ")
        );
    }

    // The package enables and starts a system-wide Prometheus (port 9090) where
    // systemd runs; the tests run their own on a free port. Stop the one we caused.
    if is_debian() && test_tools && missing_before.contains(&"prometheus") {
        stop_packaged_service("prometheus")?;
    }

    if toolchain::debian_compiler_installed()
        && toolchain::has_rustup()
        && !toolchain::debian_toolchain_linked()
    {
        eprintln!("xtask: linking Debian's rustc-web into rustup as `{DEBIAN_TOOLCHAIN}`");
        run(Command::new("rustup").args(["toolchain", "link", DEBIAN_TOOLCHAIN, "/usr"]))?;
    }

    if toolchain::bpf_linker().is_none() {
        let llvm22 = Path::new("/usr/lib/llvm-22/bin/llvm-config").is_file();
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION]);
        if llvm22 {
            // Debian's LLVM 22 (llvm-22-dev): the route verified on Debian 12.
            cmd.args(["--no-default-features", "--features", "llvm-22"])
                .env("LLVM_PREFIX", "/usr/lib/llvm-22");
        }
        eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} with cargo (takes a minute)");
        run(&mut cmd).context(
            "failed to install bpf-linker; on Debian 12 it needs llvm-22-dev, elsewhere \
             see https://github.com/aya-rs/bpf-linker",
        )?;
    }

    let route = toolchain::detect().map_err(|missing| anyhow::anyhow!("{missing}"))?;
    eprintln!(
        "xtask: eBPF toolchain: {route}; cargo runs under `rustup run {}`{}",
        route.toolchain(),
        if route.needs_rustc_bootstrap() {
            " with RUSTC_BOOTSTRAP=1 for -Z build-std"
        } else {
            ""
        }
    );
    Ok(route)
}
