//! Compiles the XDP program (`monitor-ebpf`) for `bpfel-unknown-none` with aya-build
//! and leaves the object in `OUT_DIR`, where `backend::xdp` embeds it.

use std::{env, path::Path};

#[path = "../xtask/src/toolchain.rs"]
#[expect(dead_code, reason = "shared with xtask, which uses the rest")]
mod toolchain;

use anyhow::anyhow;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=../xtask/src/toolchain.rs");
    println!("cargo:rerun-if-changed=../monitor-common/src");
    // XDP exists only on Linux; elsewhere the monitor is built without it.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Ok(());
    }
    let route = toolchain::detect()
        .map_err(|missing| anyhow!("cannot build the XDP program: {missing}"))?;
    println!("cargo:warning=building the XDP program with {route}");
    // SAFETY: build scripts are single-threaded; these only reach the child cargo.
    unsafe {
        if route.needs_rustc_bootstrap() {
            env::set_var("RUSTC_BOOTSTRAP", "1");
        }
        // rustc's BPF target runs `bpf-linker` by name: make sure the child finds it.
        if let Some(dir) = toolchain::bpf_linker().as_deref().and_then(Path::parent) {
            let mut paths = vec![dir.to_path_buf()];
            paths.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
            env::set_var("PATH", env::join_paths(paths)?);
        }
    }
    let ebpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitor-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "monitor-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Custom(route.toolchain()),
    )
}
