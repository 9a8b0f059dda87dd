//! Link arguments for bpf-linker, which does the final LLVM code generation.

fn main() {
    // bpf-linker asks LLVM to expand only memcpy in line by default; every memset (a
    // cache slot taken over, a scan sketch reset) then becomes a call to a byte-at-a-time
    // loop: about 600 instructions to clear one slot. Without this flag LLVM's generic
    // expansion turns each into a few word stores.
    println!("cargo::rustc-link-arg-bins=--disable-expand-memcpy-in-order");
}
