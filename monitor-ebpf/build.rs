//! Link arguments for bpf-linker, which does the final LLVM code generation.

fn main() {
    // Packet headers sit at any alignment; without this LLVM reads a 16-byte address
    // one byte at a time and the program costs several times more per packet. The
    // kernel accepts misaligned packet loads on architectures with efficient unaligned
    // access (x86-64, arm64), which is where this runs.
    println!("cargo::rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
}
