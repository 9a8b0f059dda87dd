//! Helpers for the integration tests: the rule for skipping kernel tests, a network
//! namespace with a veth pair that cleans up after itself, the monitor binary run as a
//! child process whose JSON lines the tests read, traffic from real tools, and an HTTP
//! server on loopback that records the webhooks it receives.

pub mod http_server;
pub mod load;
pub mod monitor_process;
pub mod netns;
pub mod send;
pub mod terminal;
pub mod traffic;

/// Whether this process may load XDP programs. When it may not, the test says why on
/// stderr and skips; under CI (`CI=true`) that skip is a failure instead.
pub fn kernel_tests_allowed(test: &str) -> bool {
    use std::io::Write as _;

    #[cfg(target_os = "linux")]
    let verdict = monitor::backend::xdp::check_privileges();
    #[cfg(not(target_os = "linux"))]
    let verdict: anyhow::Result<()> = Err(anyhow::anyhow!("XDP needs Linux"));
    match verdict {
        Ok(()) => true,
        Err(why) => {
            let message = format!("SKIPPED {test}: it needs the kernel: {why:#}");
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{message} (CI=true: a skipped kernel test fails the run)"
            );
            // Straight to fd 2: libtest captures `eprintln!`, and a skip must be seen.
            let _ = writeln!(std::io::stderr(), "{message}");
            if let Some(log) = std::env::var_os("MONITOR_SKIP_LOG") {
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .and_then(|mut f| writeln!(f, "{test}"));
            }
            false
        }
    }
}

/// Skips (returns from) the calling test when it cannot use the kernel.
#[macro_export]
macro_rules! require_kernel {
    () => {{
        // The enclosing test's path, from the type name of a function nested in it.
        fn here() {}
        let path = std::any::type_name_of_val(&here);
        if !$crate::kernel_tests_allowed(path.strip_suffix("::here").unwrap_or(path)) {
            return;
        }
    }};
}

/// Whether a command is installed; a test that needs a missing tool fails with a
/// message naming it (xtask and .ci/run install them).
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "`{tool}` is not installed: run `cargo xtask setup` (it installs the test tools)"
    );
}

/// Runs each named test function (`fn name(backend: &str)`) once per backend that sees
/// packets, as `xdp::name` and `pcap::name`: the same assertions hold on both.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod xdp {
            $(#[test]
            fn $name() {
                $crate::require_kernel!();
                super::$name("xdp");
            })*
        }
        mod pcap {
            $(#[test]
            fn $name() {
                $crate::require_kernel!();
                super::$name("pcap");
            })*
        }
    };
}
