//! `cargo xtask <command>`: the project's build, run, test and benchmark entry points.
//! Each one first makes sure the machine has what it needs (see `setup`).

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
    /// Check that the monitor (pcap and ifstats backends, no XDP) builds for macOS and Windows
    CheckOtherSystems,
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
    setup::ensure(false)?;
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
            let runner = runner_args();
            let mut cmd = cargo(&["test", "--workspace", "--exclude", "monitor-ebpf"]);
            cmd.args(&runner).arg("--").args(&args);
            test_summary::run_and_summarize(cmd)?;
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
            other_systems::check()?;
        }
    }
    Ok(())
}
