//! IPv4 and IPv6 networks ([`Cidr`]) and sets of them with longest-prefix lookup
//! ([`CidrSet`]), for the blocklist, the allowlists and the kernel's LPM trie (which
//! holds the same entries, [`CidrSet::entries`]); which sources count as local
//! networks; and the list-file syntax.

use std::{
    collections::HashSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 or IPv6 network. Host bits are cleared, so `10.1.2.3/8` is `10.0.0.0/8`;
/// a bare address is a /32 or /128; an IPv4-mapped IPv6 network is stored as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `None` when the prefix is longer than the address (33 for IPv4, 129 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                (IpAddr::V6(v6).to_canonical(), prefix - 96)
            }
            other => (other, prefix),
        };
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_u32(prefix)))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_u128(prefix)))
            }
            _ => return None,
        };
        Some(Self { network, prefix })
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_u32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_u128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Self::new(addr, prefix).ok_or_else(|| format!("`{s}` is not a valid CIDR network"))
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of networks with longest-prefix lookup: one hash set per prefix length in
/// use, so a lookup costs a few hash probes however long the list is (a blocklist can
/// hold tens of thousands of entries and every active source is checked each interval).
#[derive(Clone, Debug, Default)]
pub struct CidrSet {
    entries: Vec<Cidr>,
    /// Longest prefix first.
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl CidrSet {
    pub fn new(entries: impl IntoIterator<Item = Cidr>) -> Self {
        let mut set = Self::default();
        let mut seen = HashSet::new();
        for cidr in entries {
            if !seen.insert(cidr) {
                continue;
            }
            set.entries.push(cidr);
            match cidr.network {
                IpAddr::V4(net) => insert(&mut set.v4, cidr.prefix, u32::from(net)),
                IpAddr::V6(net) => insert(&mut set.v6, cidr.prefix, u128::from(net)),
            }
        }
        set
    }

    /// The most specific entry containing `ip`.
    pub fn longest_match(&self, ip: IpAddr) -> Option<Cidr> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.v4.iter().find_map(|(prefix, nets)| {
                    let net = bits & mask_u32(*prefix);
                    nets.contains(&net)
                        .then(|| Cidr::new(IpAddr::V4(net.into()), *prefix))
                        .flatten()
                })
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6.iter().find_map(|(prefix, nets)| {
                    let net = bits & mask_u128(*prefix);
                    nets.contains(&net)
                        .then(|| Cidr::new(IpAddr::V6(net.into()), *prefix))
                        .flatten()
                })
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.longest_match(ip).is_some()
    }

    /// The entries in the order given, without duplicates: what the kernel trie gets.
    pub fn entries(&self) -> &[Cidr] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn insert<T: std::hash::Hash + Eq>(by_prefix: &mut Vec<(u8, HashSet<T>)>, prefix: u8, net: T) {
    if let Some((_, nets)) = by_prefix.iter_mut().find(|(p, _)| *p == prefix) {
        nets.insert(net);
    } else {
        by_prefix.push((prefix, HashSet::from([net])));
        by_prefix.sort_by_key(|(prefix, _)| std::cmp::Reverse(*prefix));
    }
}

/// Private, loopback and link-local addresses: the local networks that are left out of
/// burst alerts by default (a LAN backup or a NAS sync is not an attack).
pub fn is_local_network(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// Parses a list file: one address or CIDR network a line; `#` starts a comment, blank
/// lines are skipped. The error is the 1-based line number and what is wrong with it.
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, (usize, String)> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        entries.push(entry.parse().map_err(|message| (index + 1, message))?);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_bare_addresses() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(cidr("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(
            cidr("::ffff:198.51.100.0/120").to_string(),
            "198.51.100.0/24"
        );
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.300",
            "example.com",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn set_finds_the_longest_match_for_v4_v6_and_mapped_addresses() {
        let set = CidrSet::new([
            cidr("10.0.0.0/8"),
            cidr("10.1.0.0/16"),
            cidr("2001:db8::/32"),
            cidr("10.0.0.0/8"),
        ]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.longest_match(ip("10.1.2.3")), Some(cidr("10.1.0.0/16")));
        assert_eq!(set.longest_match(ip("10.2.0.1")), Some(cidr("10.0.0.0/8")));
        assert_eq!(
            set.longest_match(ip("::ffff:10.2.0.1")),
            Some(cidr("10.0.0.0/8"))
        );
        assert_eq!(
            set.longest_match(ip("2001:db8:5::9")),
            Some(cidr("2001:db8::/32"))
        );
        assert!(!set.contains(ip("11.0.0.1")));
        assert!(!set.contains(ip("2001:db9::1")));
        assert!(CidrSet::new([cidr("0.0.0.0/0")]).contains(ip("203.0.113.9")));
        assert!(!CidrSet::default().contains(ip("203.0.113.9")));
    }

    #[test]
    fn local_networks() {
        for local in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:192.168.0.9",
        ] {
            assert!(is_local_network(ip(local)), "{local}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "2001:4860::8888", "100.64.0.1"] {
            assert!(!is_local_network(ip(public)), "{public}");
        }
    }

    #[test]
    fn list_files_skip_comments_and_report_the_bad_line() {
        let text = "# blocklist\n\n198.51.100.0/24  # a bad network\n2001:db8::/32\n192.0.2.1\n";
        let entries = parse_list(text).unwrap();
        assert_eq!(
            entries,
            [
                cidr("198.51.100.0/24"),
                cidr("2001:db8::/32"),
                cidr("192.0.2.1")
            ]
        );
        let err = parse_list("10.0.0.0/8\n# ok\n10.0.0.300/8\n").unwrap_err();
        assert_eq!(err.0, 3);
        assert!(err.1.contains("10.0.0.300/8"), "{}", err.1);
    }
}
