//! Address lists: the blocklist and the allowlist, inline entries and list files
//! merged, and the finding a blocklisted address raises. The networks themselves are
//! `crate::model::cidr`.

use std::{net::IpAddr, path::Path};

use crate::{
    config::{ConfigError, ListsConfig},
    model::{
        alert::{AlertKind, AlertSource, Finding, Target, Unit},
        cidr::{Cidr, CidrSet, parse_list},
    },
};

pub fn load_list_file(path: &Path) -> Result<Vec<Cidr>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_list(&text).map_err(|(line, message)| ConfigError::ListEntry {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// The blocklist and allowlist, inline entries and list files merged.
#[derive(Clone, Debug, Default)]
pub struct Lists {
    pub blocklist: CidrSet,
    pub allowlist: CidrSet,
}

impl Lists {
    /// Reads the list files named in the configuration.
    pub fn load(config: &ListsConfig) -> Result<Self, ConfigError> {
        let load =
            |inline: &[Cidr], files: &[std::path::PathBuf]| -> Result<CidrSet, ConfigError> {
                let mut entries = inline.to_vec();
                for file in files {
                    entries.extend(load_list_file(file)?);
                }
                Ok(CidrSet::new(entries))
            };
        Ok(Self {
            blocklist: load(&config.blocklist, &config.blocklist_files)?,
            allowlist: load(&config.allowlist, &config.allowlist_files)?,
        })
    }
}

/// Which way the traffic of a listed address went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the listed address to the host.
    FromListed,
    /// From the host to the listed address (needs an egress hook).
    ToListed,
}

/// Traffic of one listed address in the interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlocklistHit {
    pub addr: IpAddr,
    pub direction: Direction,
    pub packets: u64,
    pub bytes: u64,
}

/// The finding for traffic from or to a blocklisted address; `entry` is the list entry
/// it matched, when known.
pub fn blocklisted(hit: &BlocklistHit, entry: Option<Cidr>, target: &Target) -> Finding {
    let addr = hit.addr.to_canonical();
    let way = match hit.direction {
        Direction::FromListed => "from",
        Direction::ToListed => "to",
    };
    let listed_as = match entry {
        Some(entry) if entry.prefix() as usize != if addr.is_ipv4() { 32 } else { 128 } => {
            format!(" (listed as {entry})")
        }
        _ => String::new(),
    };
    Finding {
        kind: AlertKind::Blocklisted,
        source: AlertSource::Ip(addr),
        target: target.clone(),
        value: hit.packets as f64,
        threshold: 1.0,
        unit: Unit::Packets,
        message: format!(
            "traffic {way} blocklisted {addr}{listed_as}: {} packets, {} bytes",
            crate::model::format::thousands(hit.packets),
            crate::model::format::thousands(hit.bytes)
        ),
        flow: None,
        connection: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::fixtures::eth0;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn blocklisted_finding_names_the_entry() {
        let hit = BlocklistHit {
            addr: ip("::ffff:198.51.100.23"),
            direction: Direction::FromListed,
            packets: 12,
            bytes: 1_234,
        };
        let f = blocklisted(&hit, Some(cidr("198.51.100.0/24")), &eth0());
        assert_eq!(
            (f.kind, f.source.to_string()),
            (AlertKind::Blocklisted, "198.51.100.23".into())
        );
        assert_eq!((f.value, f.threshold, f.unit), (12.0, 1.0, Unit::Packets));
        assert_eq!(
            f.message,
            "traffic from blocklisted 198.51.100.23 (listed as 198.51.100.0/24): 12 packets, 1,234 bytes"
        );
        let out = BlocklistHit {
            direction: Direction::ToListed,
            ..hit
        };
        let f = blocklisted(&out, Some(cidr("198.51.100.23")), &eth0());
        assert_eq!(
            f.message,
            "traffic to blocklisted 198.51.100.23: 12 packets, 1,234 bytes"
        );
    }

    #[test]
    fn a_bad_list_file_is_named_with_its_line() {
        let dir = std::env::temp_dir().join(format!("monitor-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("block.txt");
        std::fs::write(&file, "192.0.2.0/24\nnot-an-address\n").unwrap();
        let config = ListsConfig {
            blocklist_files: vec![file.clone()],
            ..ListsConfig::default()
        };
        let err = Lists::load(&config).unwrap_err().to_string();
        assert!(err.contains("block.txt") && err.contains("line 2"), "{err}");
        let missing = ListsConfig {
            allowlist_files: vec![dir.join("missing.txt")],
            ..ListsConfig::default()
        };
        assert!(
            Lists::load(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.txt")
        );
        std::fs::write(&file, "192.0.2.0/24\n").unwrap();
        let lists = Lists::load(&ListsConfig {
            blocklist: vec![cidr("2001:db8::/32")],
            blocklist_files: vec![file],
            ..ListsConfig::default()
        })
        .unwrap();
        assert!(lists.blocklist.contains(ip("192.0.2.77")));
        assert!(lists.blocklist.contains(ip("2001:db8::7")));
        assert!(lists.allowlist.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
