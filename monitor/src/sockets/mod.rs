//! Listing the host's sockets and the processes that hold them, for the connection
//! monitor: `/proc` on Linux ([`linux`]), `netstat2` and `sysinfo` elsewhere, on a
//! thread of its own ([`ConnectionScanner`]) so a slow scan never delays a poll.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod other;
mod scanner;

#[cfg(target_os = "linux")]
pub use linux::{list_sockets, missing_rights};
#[cfg(not(target_os = "linux"))]
pub use other::{list_sockets, missing_rights};
pub use scanner::{ConnectionScanner, next_scan};
