//! Finds a compiler that can build the eBPF crate for `bpfel-unknown-none`, and says
//! exactly what is missing when there is none.
//!
//! Shared, std only, by `cargo xtask` (which can also install what is missing) and by
//! `monitor/build.rs` (which only looks), through `#[path]`.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::Command,
};

/// Name under which Debian's compiler is linked into rustup.
pub(crate) const DEBIAN_TOOLCHAIN: &str = "debian-rustc";
/// Where `rust-web-src` puts the library source.
pub(crate) const DEBIAN_LIBRARY_SOURCE: &str = "/usr/lib/rustlib/src/rust/library/core";
/// Debian 12 packages of the verified route (see the README).
pub(crate) const DEBIAN_BUILD_PACKAGES: &[&str] = &[
    "rustc-web",
    "rust-web-src",
    "cargo-web",
    "llvm-22-dev",
    "libpcap-dev",
    "pkg-config",
    "build-essential",
];
pub(crate) const BPF_LINKER_VERSION: &str = "0.13.0";

/// How the eBPF crate gets built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// rustup's nightly with its `rust-src` component: the usual route.
    RustupNightly,
    /// Debian's `rustc-web` with `rust-web-src`, linked into rustup as
    /// [`DEBIAN_TOOLCHAIN`]; it is a stable compiler, so it needs `RUSTC_BOOTSTRAP=1`
    /// for `-Z build-std=core`.
    DebianRustc,
}

impl Route {
    /// The rustup toolchain name to run cargo under.
    pub(crate) fn toolchain(&self) -> &'static str {
        match self {
            Self::RustupNightly => "nightly",
            Self::DebianRustc => DEBIAN_TOOLCHAIN,
        }
    }

    pub(crate) fn needs_rustc_bootstrap(&self) -> bool {
        matches!(self, Self::DebianRustc)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RustupNightly => write!(f, "rustup nightly with rust-src"),
            Self::DebianRustc => write!(
                f,
                "Debian's rustc-web with rust-web-src (rustup toolchain `{DEBIAN_TOOLCHAIN}`)"
            ),
        }
    }
}

/// What stands between this machine and an eBPF build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// No compiler with the core library's source.
    Compiler,
    /// Debian's compiler is installed but not linked into rustup.
    DebianToolchainNotLinked,
    /// No bpf-linker on PATH or in ~/.cargo/bin.
    BpfLinker,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compiler => write!(
                f,
                "no Rust compiler that can build eBPF (bpfel-unknown-none needs core's source): \
                 on Debian 12 run `apt-get install rustc-web rust-web-src cargo-web` \
                 (or just `cargo xtask setup`); elsewhere \
                 `rustup toolchain install nightly --component rust-src`"
            ),
            Self::DebianToolchainNotLinked => write!(
                f,
                "Debian's rustc-web is installed but rustup does not know it: run \
                 `rustup toolchain link {DEBIAN_TOOLCHAIN} /usr` (or `cargo xtask setup`)"
            ),
            Self::BpfLinker => write!(
                f,
                "bpf-linker not found: on Debian 12 run `apt-get install llvm-22-dev && \
                 LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --version \
                 {BPF_LINKER_VERSION} --no-default-features --features llvm-22` \
                 (or just `cargo xtask setup`); elsewhere `cargo install bpf-linker`"
            ),
        }
    }
}

fn runs(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(crate) fn has_rustup() -> bool {
    runs("rustup", &["--version"]).is_some()
}

fn rustup_sysroot(toolchain: &str) -> Option<PathBuf> {
    runs("rustup", &["run", toolchain, "rustc", "--print", "sysroot"]).map(PathBuf::from)
}

fn nightly_has_rust_src() -> bool {
    rustup_sysroot("nightly")
        .is_some_and(|root| root.join("lib/rustlib/src/rust/library/core").is_dir())
}

pub(crate) fn debian_compiler_installed() -> bool {
    Path::new("/usr/bin/rustc").is_file() && Path::new(DEBIAN_LIBRARY_SOURCE).is_dir()
}

pub(crate) fn debian_toolchain_linked() -> bool {
    rustup_sysroot(DEBIAN_TOOLCHAIN).is_some()
}

/// bpf-linker's path, looked for on PATH and in cargo's install directory.
pub(crate) fn bpf_linker() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}

/// The route to use, preferring rustup's nightly when it has rust-src.
pub(crate) fn detect() -> Result<Route, Missing> {
    let route = if nightly_has_rust_src() {
        Route::RustupNightly
    } else if debian_compiler_installed() {
        if has_rustup() && !debian_toolchain_linked() {
            return Err(Missing::DebianToolchainNotLinked);
        }
        Route::DebianRustc
    } else {
        return Err(Missing::Compiler);
    };
    if bpf_linker().is_none() {
        return Err(Missing::BpfLinker);
    }
    Ok(route)
}
