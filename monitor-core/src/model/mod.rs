//! The model: plain data every other layer shares, and nothing else. It imports nothing
//! from the rest of the crate: alerts and findings, bans, networks and address sets,
//! snapshots of the counters, captures, packet records, the host's sockets, the packet
//! filter, and the number and time formatting every renderer uses.

pub mod alert;
pub mod ban;
pub mod capture;
pub mod cidr;
pub mod connection;
pub mod filter;
pub mod format;
pub mod packet;
pub mod snapshot;
pub mod source_list;
