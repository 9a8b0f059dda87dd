//! Whether this process may load and attach the program, checked before anything is
//! loaded so that a missing capability is one line saying what to grant.

use anyhow::{Result, bail};

/// What to do about missing rights; also said when the kernel refuses to create maps.
pub(super) const PRIVILEGE_HINT: &str = "run as root (sudo), or grant the binary the capabilities: \
    sudo setcap cap_bpf,cap_net_admin,cap_perfmon+ep <path to monitor>";

/// Fails with one line naming the missing capabilities, before anything is loaded.
pub fn check_privileges() -> Result<()> {
    use caps::{CapSet, Capability};
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    let mut missing = Vec::new();
    if !has(Capability::CAP_BPF) && !has(Capability::CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(Capability::CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    // Without it the verifier treats the program as unprivileged and refuses its
    // packet-pointer arithmetic ("pointer -= pointer prohibited").
    if !has(Capability::CAP_PERFMON) && !has(Capability::CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !missing.is_empty() {
        bail!(
            "missing capability {}: {PRIVILEGE_HINT}",
            missing.join(", ")
        );
    }
    Ok(())
}
