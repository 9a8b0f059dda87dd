//! `cargo xtask fuzz`: cargo-fuzz on the targets in `fuzz/` (a workspace of its own,
//! so that normal builds and CI never need nightly flags or sanitizers).

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::setup::run;

/// The targets in `fuzz/fuzz_targets`, each with its seeds in fuzz/seeds/<target>.
pub(crate) const TARGETS: &[&str] = &["decode", "config"];

fn cargo_fuzz_installed() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn run_targets(
    root: &Path,
    seconds: u64,
    only: Option<&str>,
    no_sanitizer: bool,
) -> Result<()> {
    let targets: Vec<&str> = match only {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target `{t}`; there are: {}", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    if !cargo_fuzz_installed() {
        eprintln!("xtask: installing cargo-fuzz with cargo");
        run(Command::new("cargo").args(["install", "cargo-fuzz"]))
            .context("failed to install cargo-fuzz")?;
    }
    let fuzz_dir = root.join("fuzz");
    for target in targets {
        // The corpus libFuzzer grows (not in git), then the seeds kept in git.
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("failed to create {}", corpus.display()))?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&fuzz_dir)
            .args(["fuzz", "run", "--release", target])
            .arg(&corpus)
            .arg(fuzz_dir.join("seeds").join(target))
            // cargo-fuzz passes -Z flags; a stable or Debian toolchain takes them so.
            .env("RUSTC_BOOTSTRAP", "1");
        if no_sanitizer {
            cmd.args(["--sanitizer", "none"]);
        }
        cmd.arg("--").arg(format!("-max_total_time={seconds}"));
        eprintln!("xtask: fuzzing `{target}` for {seconds} s");
        run(&mut cmd).with_context(|| {
            format!(
                "fuzz target `{target}` failed: the input is in fuzz/artifacts/{target}/; \\
                 keep it as a regression test (a unit test feeding those bytes) once fixed"
            )
        })?;
    }
    Ok(())
}
