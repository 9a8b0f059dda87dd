//! The packet log (`--packets`): one line per packet, as predecessor 001 printed them,
//! from whatever backend feeds it (`Backend::packet_log`), within a rate cap so that a
//! flood cannot flood the terminal.

use std::{
    net::IpAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use monitor_common::{
    Class,
    decode::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

use crate::model::packet::PacketRecord;

/// Default `--packets-rate`: lines per second.
pub const DEFAULT_RATE: u32 = 100;

const TCP_PSH: u8 = 0x08;
const TCP_URG: u8 = 0x20;

/// tcpdump's flag letters: S F R P U and `.` for ACK, e.g. `S.` for a SYN-ACK.
pub fn tcp_flags(flags: u8) -> String {
    let mut out = String::new();
    for (bit, letter) in [
        (TCP_SYN, 'S'),
        (TCP_FIN, 'F'),
        (TCP_RST, 'R'),
        (TCP_PSH, 'P'),
        (TCP_URG, 'U'),
        (TCP_ACK, '.'),
    ] {
        if flags & bit != 0 {
            out.push(letter);
        }
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

fn protocol_name(record: &PacketRecord) -> String {
    match record.class {
        Class::Tcp => "TCP".into(),
        Class::Udp => "UDP".into(),
        Class::Icmp => "ICMP".into(),
        _ => format!("IP/{}", record.ip_proto),
    }
}

fn endpoint(ip: IpAddr, port: u16, with_port: bool) -> String {
    match (with_port, ip) {
        (false, ip) => ip.to_string(),
        (true, IpAddr::V4(v4)) => format!("{v4}:{port}"),
        (true, IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
    }
}

/// `HH:MM:SS.mmm` (UTC) of a timestamp.
pub fn clock(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

/// ANSI colours per protocol, as the predecessor's console output had them.
fn colour(class: Class) -> &'static str {
    match class {
        Class::Tcp => "\x1b[32m",  // green
        Class::Udp => "\x1b[34m",  // blue
        Class::Icmp => "\x1b[33m", // yellow
        _ => "\x1b[35m",           // magenta
    }
}

/// One line: `12:00:01.234 TCP 10.0.0.1:40000 -> 10.0.0.2:443 60 bytes [S]`.
pub fn format_line(record: &PacketRecord, colour_on: bool) -> String {
    let ports = matches!(record.class, Class::Tcp | Class::Udp);
    let mut line = format!(
        "{} {:<4} {} -> {} {} bytes",
        clock(record.timestamp),
        protocol_name(record),
        endpoint(record.src, record.src_port, ports),
        endpoint(record.dst, record.dst_port, ports),
        record.len,
    );
    if record.class == Class::Tcp {
        line.push_str(&format!(" [{}]", tcp_flags(record.tcp_flags)));
    }
    if colour_on {
        format!("{}{line}\x1b[0m", colour(record.class))
    } else {
        line
    }
}

/// The cap on lines per second of packet time: at most `rate` lines carry a timestamp
/// in any one second, so the output stays within the cap however the kernel's per-CPU
/// caps add up. A record from a second already passed (another CPU's, late) is
/// skipped rather than let that second exceed the cap.
#[derive(Debug)]
pub struct RateCap {
    rate: u32,
    second: u64,
    in_second: u32,
    /// Records refused, cumulative.
    pub skipped: u64,
}

impl RateCap {
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            second: 0,
            in_second: 0,
            skipped: 0,
        }
    }

    pub fn admit(&mut self, timestamp: SystemTime) -> bool {
        let second = timestamp
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if second > self.second {
            self.second = second;
            self.in_second = 0;
        }
        if second < self.second || self.in_second >= self.rate {
            self.skipped += 1;
            return false;
        }
        self.in_second += 1;
        true
    }
}

/// `packet log: 1,234 lines skipped (rate cap 100/s 1,000, buffers full 234)`: what
/// did not make it into the log, by cause.
pub fn skipped_line(capped: u64, backend: u64, total: bool) -> String {
    use crate::model::format::thousands;
    format!(
        "packet log: {} lines skipped{} (rate cap {}, kernel cap or full buffers {})",
        thousands(capped + backend),
        if total { " in all" } else { " so far" },
        thousands(capped),
        thousands(backend),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(class: Class, flags: u8) -> PacketRecord {
        PacketRecord {
            timestamp: UNIX_EPOCH + Duration::from_millis(3_661_234),
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            class,
            ip_proto: 6,
            src_port: 40_000,
            dst_port: 443,
            len: 60,
            tcp_flags: flags,
        }
    }

    #[test]
    fn lines_have_time_protocol_endpoints_size_and_flags() {
        assert_eq!(
            format_line(&record(Class::Tcp, TCP_SYN), false),
            "01:01:01.234 TCP  10.0.0.1:40000 -> 10.0.0.2:443 60 bytes [S]"
        );
        assert_eq!(
            format_line(&record(Class::Tcp, TCP_SYN | TCP_ACK), false),
            "01:01:01.234 TCP  10.0.0.1:40000 -> 10.0.0.2:443 60 bytes [S.]"
        );
        assert_eq!(
            format_line(&record(Class::Udp, 0), false),
            "01:01:01.234 UDP  10.0.0.1:40000 -> 10.0.0.2:443 60 bytes"
        );
        let mut icmp6 = record(Class::Icmp, 0);
        icmp6.src = "2001:db8::1".parse().unwrap();
        assert_eq!(
            format_line(&icmp6, false),
            "01:01:01.234 ICMP 2001:db8::1 -> 10.0.0.2 60 bytes"
        );
        let mut v6 = record(Class::Udp, 0);
        v6.dst = "2001:db8::2".parse().unwrap();
        assert!(format_line(&v6, false).contains("-> [2001:db8::2]:443 "));
        let mut gre = record(Class::Other, 0);
        gre.ip_proto = 47;
        assert!(format_line(&gre, false).contains(" IP/47 10.0.0.1 -> 10.0.0.2 60 bytes"));
        let coloured = format_line(&record(Class::Tcp, TCP_RST | TCP_ACK), true);
        assert!(coloured.starts_with("\x1b[32m") && coloured.ends_with("[R.]\x1b[0m"));
        assert_eq!(tcp_flags(0), "none");
        assert_eq!(tcp_flags(TCP_FIN | TCP_PSH | TCP_ACK), "FP.");
    }

    #[test]
    fn the_cap_holds_per_second_of_packet_time() {
        let mut cap = RateCap::new(2);
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let admitted: Vec<bool> = [1_000, 1_100, 1_200, 2_000, 1_900, 2_500, 2_600, 3_000]
            .into_iter()
            .map(|ms| cap.admit(at(ms)))
            .collect();
        assert_eq!(
            admitted,
            [true, true, false, true, false, true, false, true]
        );
        assert_eq!(cap.skipped, 3);
        assert_eq!(
            skipped_line(3, 1_000, true),
            "packet log: 1,003 lines skipped in all (rate cap 3, kernel cap or full buffers 1,000)"
        );
    }
}
