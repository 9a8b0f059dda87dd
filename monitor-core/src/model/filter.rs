//! `--filter`: a small subset of pcap's filter language, parsed into the
//! [`PacketFilter`] the kernel evaluates.
//!
//! ```text
//! filter := term ("and" term)*
//! term   := "tcp" | "udp" | "icmp"
//!         | ["src" | "dst"] "host" ADDRESS
//!         | ["src" | "dst"] "port" NUMBER
//! ```
//! At most one protocol, one host and one port term: enough for "what is this one
//! service or peer doing", and cheap to evaluate per packet in the kernel.

use std::{fmt, net::IpAddr, str::FromStr};

use monitor_common::{
    Class, SourceKey,
    view::{PacketFilter, TERM_CLASS, TERM_DST_HOST, TERM_DST_PORT, TERM_SRC_HOST, TERM_SRC_PORT},
};

/// A parsed filter, with the text it came from (for the log and the report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub text: String,
    pub kernel: PacketFilter,
}

const EXPECTED_TERM: &str =
    "expected tcp, udp, icmp, [src|dst] host ADDRESS or [src|dst] port NUMBER";

impl FromStr for Filter {
    type Err = String;

    /// One line naming the token that is wrong.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut words = text.split_whitespace().peekable();
        let mut kernel = PacketFilter::default();
        if words.peek().is_none() {
            return Err(format!("empty filter: {EXPECTED_TERM}"));
        }
        loop {
            let word = words
                .next()
                .ok_or_else(|| format!("filter `{text}` ends after `and`: {EXPECTED_TERM}"))?;
            let lower = word.to_ascii_lowercase();
            let (direction, keyword) = match lower.as_str() {
                "src" | "dst" => {
                    let next = words.next().ok_or_else(|| {
                        format!("filter `{text}` ends after `{word}`: expected host or port")
                    })?;
                    (Some(lower.clone()), next.to_ascii_lowercase())
                }
                _ => (None, lower.clone()),
            };
            let (src_bit, dst_bit) = match direction.as_deref() {
                Some("src") => (true, false),
                Some(_) => (false, true),
                None => (true, true),
            };
            match keyword.as_str() {
                "tcp" | "udp" | "icmp" if direction.is_none() => {
                    if kernel.terms & TERM_CLASS != 0 {
                        return Err(format!(
                            "filter `{text}`: a second protocol `{word}` (one packet has one; \
                             run one monitor per protocol)"
                        ));
                    }
                    kernel.terms |= TERM_CLASS;
                    kernel.class = match keyword.as_str() {
                        "tcp" => Class::Tcp,
                        "udp" => Class::Udp,
                        _ => Class::Icmp,
                    } as u8;
                }
                "host" => {
                    let value = words.next().ok_or_else(|| {
                        format!("filter `{text}` ends after `host`: expected an IP address")
                    })?;
                    let ip: IpAddr = value.parse().map_err(|_| {
                        format!("filter `{text}`: `{value}` is not an IP address (after `host`)")
                    })?;
                    if kernel.terms & (TERM_SRC_HOST | TERM_DST_HOST) != 0 {
                        return Err(format!(
                            "filter `{text}`: a second host term at `{value}` (only one is supported)"
                        ));
                    }
                    kernel.host = SourceKey::from_ip(ip).addr;
                    kernel.terms |= bits(src_bit, dst_bit, TERM_SRC_HOST, TERM_DST_HOST);
                }
                "port" => {
                    let value = words.next().ok_or_else(|| {
                        format!("filter `{text}` ends after `port`: expected a port number")
                    })?;
                    let port: u16 = value.parse().map_err(|_| {
                        format!(
                            "filter `{text}`: `{value}` is not a port number 0-65535 (after `port`)"
                        )
                    })?;
                    if kernel.terms & (TERM_SRC_PORT | TERM_DST_PORT) != 0 {
                        return Err(format!(
                            "filter `{text}`: a second port term at `{value}` (only one is supported)"
                        ));
                    }
                    kernel.port = port;
                    kernel.terms |= bits(src_bit, dst_bit, TERM_SRC_PORT, TERM_DST_PORT);
                }
                _ => {
                    let bad = if direction.is_some() {
                        &keyword
                    } else {
                        &lower
                    };
                    return Err(format!(
                        "filter `{text}`: unexpected `{bad}`: {EXPECTED_TERM}"
                    ));
                }
            }
            match words.next() {
                None => break,
                Some(and) if and.eq_ignore_ascii_case("and") || and == "&&" => {}
                Some(other) => {
                    return Err(format!(
                        "filter `{text}`: unexpected `{other}`: expected `and` between terms \
                         (or, not and parentheses are not supported)"
                    ));
                }
            }
        }
        Ok(Self {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            kernel,
        })
    }
}

fn bits(src: bool, dst: bool, src_bit: u32, dst_bit: u32) -> u32 {
    (if src { src_bit } else { 0 }) | (if dst { dst_bit } else { 0 })
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// For clap: `--filter "tcp and port 443"`.
pub fn parse(text: &str) -> Result<Filter, String> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_filter_sets_every_term() {
        let f: Filter = "tcp and port 443 and host 10.0.0.1".parse().unwrap();
        assert_eq!(f.kernel.class, Class::Tcp as u8);
        assert_eq!(f.kernel.port, 443);
        assert_eq!(
            f.kernel.terms,
            TERM_CLASS | TERM_SRC_PORT | TERM_DST_PORT | TERM_SRC_HOST | TERM_DST_HOST
        );
        assert_eq!(
            f.kernel.host,
            SourceKey::from_ip("10.0.0.1".parse().unwrap()).addr
        );
        assert_eq!(f.to_string(), "tcp and port 443 and host 10.0.0.1");
    }

    #[test]
    fn directions_case_and_spacing() {
        let f: Filter = "  UDP && src host 2001:db8::1 AND dst  port 53 "
            .parse()
            .unwrap();
        assert_eq!(f.kernel.class, Class::Udp as u8);
        assert_eq!(f.kernel.terms, TERM_CLASS | TERM_SRC_HOST | TERM_DST_PORT);
        assert_eq!(f.text, "UDP && src host 2001:db8::1 AND dst port 53");
        let icmp: Filter = "icmp".parse().unwrap();
        assert_eq!(
            (icmp.kernel.terms, icmp.kernel.class),
            (TERM_CLASS, Class::Icmp as u8)
        );
    }

    #[test]
    fn errors_name_the_bad_token_on_one_line() {
        let cases = [
            ("", "empty filter"),
            ("tcp and", "ends after `and`"),
            ("tcp or udp", "unexpected `or`"),
            ("sctp", "unexpected `sctp`"),
            ("host 10.0.0.300", "`10.0.0.300` is not an IP address"),
            ("port http", "`http` is not a port number"),
            ("port 70000", "`70000` is not a port number"),
            ("port", "ends after `port`"),
            ("src", "ends after `src`"),
            ("src tcp", "unexpected `tcp`"),
            ("tcp and udp", "a second protocol `udp`"),
            (
                "host 1.1.1.1 and host 2.2.2.2",
                "a second host term at `2.2.2.2`",
            ),
            ("port 1 and dst port 2", "a second port term at `2`"),
            ("tcp port 80", "expected `and` between terms"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Filter>().unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{text:?}: one line");
        }
    }
}
