//! Runs `cargo test`, passing its output through, and closes with one line that adds
//! up every test binary's result and the kernel tests that skipped.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

/// Adds one libtest line, `test result: ok. 7 passed; 0 failed; 1 ignored; ...`.
pub(crate) fn add_result_line(tally: &mut Tally, line: &str) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => tally.passed += n,
            "failed" => tally.failed += n,
            "ignored" => tally.ignored += n,
            _ => {}
        }
    }
}

/// Runs the tests; `note` (another step's outcome) is printed just before the
/// closing line.
pub(crate) fn run_and_summarize(mut cmd: Command, note: &str) -> Result<()> {
    let skip_log = std::env::temp_dir().join(format!("monitor-skips-{}", std::process::id()));
    let _ = std::fs::remove_file(&skip_log);
    let mut child = cmd
        .env("MONITOR_SKIP_LOG", &skip_log)
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start cargo test")?;
    let mut tally = Tally::default();
    for line in BufReader::new(child.stdout.take().context("stdout")?)
        .lines()
        .map_while(Result::ok)
    {
        println!("{line}");
        add_result_line(&mut tally, &line);
    }
    let status = child.wait()?;
    let skipped = std::fs::read_to_string(&skip_log).map_or(0, |s| s.lines().count());
    let _ = std::fs::remove_file(&skip_log);
    println!("{note}");
    println!(
        "tests: {} passed, {} failed, {skipped} skipped",
        tally.passed - skipped as u64,
        tally.failed
    );
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_add_up() {
        let mut t = Tally::default();
        add_result_line(
            &mut t,
            "test result: ok. 7 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 8.07s",
        );
        add_result_line(&mut t, "test result: FAILED. 2 passed; 3 failed; 0 ignored");
        add_result_line(&mut t, "running 3 tests");
        assert_eq!(
            t,
            Tally {
                passed: 9,
                failed: 3,
                ignored: 1
            }
        );
    }
}
