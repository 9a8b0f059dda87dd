//! In-kernel mitigation: the XDP program drops blocklisted and banned sources. This
//! module holds the ban [`policy`] (a pure function of the detectors' findings and a
//! clock), the events it raises and the operator's [`control`] socket (`monitor bans
//! list|unban`); its settings are `crate::config::MitigateConfig`.
//!
//! Only the XDP backend can drop packets; `--mitigate` with another backend stops the
//! monitor at start with one line saying so (a monitor that was asked to protect the
//! host and silently does not is worse than one that refuses to start).

pub mod active;
pub mod control;
pub mod policy;

pub use active::Mitigation;
pub use policy::{Ban, Decision, Policy, UnbanReason};
