//! One packet as any backend reports it, for the packet log (`--packets`).

use std::{net::IpAddr, time::SystemTime};

use monitor_common::{Class, PacketInfo, SourceKey};

/// One packet, as any backend reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRecord {
    pub timestamp: SystemTime,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub class: Class,
    /// IP protocol number (for `Other`).
    pub ip_proto: u8,
    /// Zero unless TCP or UDP.
    pub src_port: u16,
    pub dst_port: u16,
    /// Frame length in bytes.
    pub len: u32,
    /// Zero unless TCP.
    pub tcp_flags: u8,
}

impl PacketRecord {
    /// The record of a decoded packet `len` bytes long (the frame), seen at `timestamp`:
    /// the fields the XDP program puts in its `PacketLogEvent`.
    pub fn of(info: &PacketInfo, len: u64, timestamp: SystemTime) -> Self {
        let ip = |addr| SourceKey { addr }.ip();
        Self {
            timestamp,
            src: ip(info.src),
            dst: ip(info.dst),
            class: info.class(),
            ip_proto: info.ip_proto(),
            src_port: info.src_port(),
            dst_port: info.dst_port(),
            len: u32::try_from(len).unwrap_or(u32::MAX),
            tcp_flags: info.tcp_flags(),
        }
    }
}
