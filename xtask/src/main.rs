//! `cargo xtask <command>`: the project's build, run, test and benchmark entry points.
//! Each one first makes sure the machine has what it needs (see `setup`).

mod demo;
mod fuzz;
mod layers;
mod other_systems;
mod setup;
mod test_summary;
mod toolchain;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::setup::{is_root, run};

#[derive(Parser)]
#[command(about = "Build, run, test and benchmark the monitor")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
#[expect(
    clippy::doc_markdown,
    reason = "clap prints these docs as the --help text, backticks and all"
)]
enum Cmd {
    /// Install (on Debian) or check (elsewhere) the eBPF toolchain and the test tools
    Setup {
        /// Skip the tools only the tests need (hping3, nmap, tshark, ...)
        #[arg(long)]
        no_test_tools: bool,
    },
    /// Build the monitor, XDP program included
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build the monitor and run it (as root, through sudo if needed) with the given arguments
    BuildAndRun {
        #[arg(long)]
        release: bool,
        /// Arguments for the monitor, after `--`
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test: host unit tests, BPF_PROG_TEST_RUN tests, end-to-end tests
    Test {
        /// Extra arguments for `cargo test`, after `--` (e.g. a test name filter)
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks and print their figures (see BENCHMARKS.md)
    Bench,
    /// Check that the monitor (pcap and ifstats backends, no XDP) builds for Windows
    /// (macOS cannot be checked from Linux: it says why)
    CheckOtherSystems,
    /// Fuzz the packet decoder and the configuration parser (cargo-fuzz, installed if
    /// missing); a crash is left in fuzz/artifacts/<target>/
    Fuzz {
        /// Seconds per target
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Only this target (`decode` or `config`); both by default
        #[arg(long)]
        target: Option<String>,
        /// libFuzzer without a sanitizer (faster; for toolchains without ASan)
        #[arg(long)]
        no_sanitizer: bool,
    },
    /// Print the monitor crate's import graph by layer, failing on an upward import or
    /// a cycle (ARCHITECTURE.md)
    Layers,
    /// Watch the monitor detect a SYN flood and a port scan in a sandbox network
    /// (a namespace and a veth pair, removed on exit)
    Demo {
        /// Plain coloured lines instead of the dashboard (--tui)
        #[arg(long)]
        plain: bool,
        /// Stop after this many seconds even if the story is not over, e.g. 60s
        #[arg(long, value_parser = parse_seconds)]
        duration: Option<std::time::Duration>,
        /// Use this monitor binary instead of building one
        #[arg(long, value_name = "PATH")]
        monitor: Option<PathBuf>,
    },
}

/// "45s" or "45": whole seconds.
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse()
        .map(std::time::Duration::from_secs)
        .map_err(|_| format!("`{text}` is not a number of seconds like 60s"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(workspace_root());
    cmd
}

fn build(release: bool) -> Result<PathBuf> {
    build_with(release, false)
}

/// Builds the monitor after setup, which installs the test tools too when `test_tools`.
fn build_with(release: bool, test_tools: bool) -> Result<PathBuf> {
    setup::ensure(test_tools)?;
    let mut args = vec!["build", "--package", "monitor"];
    if release {
        args.push("--release");
    }
    run(&mut cargo(&args))?;
    let profile = if release { "release" } else { "debug" };
    Ok(workspace_root()
        .join("target")
        .join(profile)
        .join("monitor"))
}

/// `cargo test` runs test binaries as the current user; kernel tests need root, so a
/// non-root user's tests go through `sudo -E` (and say so) instead of skipping.
fn runner_args() -> Vec<String> {
    if is_root() {
        return Vec::new();
    }
    if Command::new("sudo")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("xtask: running the test binaries through `sudo -E` (XDP needs root)");
        return vec![
            "--config".into(),
            "target.'cfg(all())'.runner = 'sudo -E'".into(),
        ];
    }
    eprintln!("xtask: not root and no password-less sudo: the kernel tests will say so and skip");
    Vec::new()
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Fuzz {
            time,
            target,
            no_sanitizer,
        } => fuzz::run_targets(&workspace_root(), time, target.as_deref(), no_sanitizer)?,
        Cmd::Layers => layers::check(&workspace_root())?,
        Cmd::Setup { no_test_tools } => {
            setup::ensure(!no_test_tools)?;
        }
        Cmd::Build { release } => {
            let binary = build(release)?;
            eprintln!("xtask: built {}", binary.display());
        }
        Cmd::BuildAndRun { release, args } => {
            let binary = build(release)?;
            let mut cmd = if is_root() {
                Command::new(&binary)
            } else {
                eprintln!(
                    "xtask: running the monitor with sudo (XDP needs CAP_BPF and CAP_NET_ADMIN)"
                );
                let mut c = Command::new("sudo");
                c.arg(&binary);
                c
            };
            cmd.args(&args);
            let status = cmd
                .status()
                .with_context(|| format!("failed to run {}", binary.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Test { args } => {
            setup::ensure(true)?;
            // The end-to-end tests run the monitor binary itself.
            run(&mut cargo(&["build", "--package", "monitor"]))?;
            // Before the tests, so that the summary is the last line; a failure is
            // reported there and fails the run after the tests.
            let other_systems = other_systems::check();
            let runner = runner_args();
            let mut cmd = cargo(&["test", "--workspace", "--exclude", "monitor-ebpf"]);
            cmd.args(&runner).arg("--").args(&args);
            let note = match &other_systems {
                Ok(summary) => format!("other systems: {summary}"),
                Err(err) => format!("other systems: FAILED: {err:#}"),
            };
            test_summary::run_and_summarize(cmd, &note)?;
            other_systems?;
        }
        Cmd::Demo {
            plain,
            duration,
            monitor,
        } => {
            // The demo's tools (hping3, nmap) are test tools.
            let monitor = match monitor {
                Some(path) => path,
                None => build_with(false, true)?,
            };
            if !is_root() {
                eprintln!("xtask: running the demo with sudo (namespaces and XDP need root)");
                let mut cmd = Command::new("sudo");
                cmd.arg(std::env::current_exe()?)
                    .arg("demo")
                    .arg("--monitor")
                    .arg(&monitor);
                if plain {
                    cmd.arg("--plain");
                }
                if let Some(d) = duration {
                    cmd.arg("--duration").arg(format!("{}s", d.as_secs()));
                }
                let status = cmd.status().context("failed to run sudo")?;
                std::process::exit(status.code().unwrap_or(1));
            }
            demo::run(&demo::DemoOptions {
                monitor,
                plain,
                duration,
            })?;
        }
        Cmd::Bench => {
            setup::ensure(true)?;
            setup::ensure_bench_tools()?;
            // The detection latency benchmark runs the monitor binary (target/release).
            run(&mut cargo(&["build", "--release", "--package", "monitor"]))?;
            let runner = runner_args();
            let mut cmd = cargo(&["bench", "--package", "monitor-tests"]);
            cmd.args(&runner);
            run(&mut cmd)?;
        }
        Cmd::CheckOtherSystems => {
            setup::ensure(false)?;
            eprintln!("xtask: {}", other_systems::check()?);
        }
    }
    Ok(())
}
