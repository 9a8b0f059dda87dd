//! In-kernel mitigation: the XDP program drops blocklisted and banned sources. This
//! module holds the ban [`policy`], a pure function of the detectors' findings and a
//! clock; `monitor::run` applies its decisions to the backend, `monitor::control` is the
//! operator's socket (`monitor bans list|unban`), and its settings are
//! `crate::config::MitigateConfig`.
//!
//! Only the XDP backend can drop packets; `--mitigate` with another backend stops the
//! monitor at start with one line saying so (a monitor that was asked to protect the
//! host and silently does not is worse than one that refuses to start).

use crate::{config::Config, detect::Lists, model::cidr::Cidr};

pub mod policy;

pub use policy::{Decision, Policy};

/// The sources mitigation never drops: both allowlists.
pub fn never_dropped(config: &Config, lists: &Lists) -> Vec<Cidr> {
    let mut cidrs = lists.allowlist.entries().to_vec();
    cidrs.extend_from_slice(&config.mitigate.allowlist);
    cidrs
}
