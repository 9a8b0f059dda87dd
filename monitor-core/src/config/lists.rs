//! `[lists]`: the blocklist and the allowlist, inline or from list files
//! (`crate::detect::lists` reads them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::cidr::Cidr;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    /// Addresses or networks whose traffic is always reported.
    pub blocklist: Vec<Cidr>,
    /// Files with one address or network a line, `#` comments. A relative path is
    /// relative to the configuration file.
    pub blocklist_files: Vec<PathBuf>,
    /// Sources that never raise an alert (allowlist wins over blocklist).
    pub allowlist: Vec<Cidr>,
    pub allowlist_files: Vec<PathBuf>,
    /// Leave private, loopback and link-local sources out of the burst alerts (pps and
    /// bandwidth), as predecessor 003 does; floods and scans still apply to them.
    pub exclude_private_from_burst: bool,
}

impl Default for ListsConfig {
    fn default() -> Self {
        Self {
            blocklist: Vec::new(),
            blocklist_files: Vec::new(),
            allowlist: Vec::new(),
            allowlist_files: Vec::new(),
            exclude_private_from_burst: true,
        }
    }
}
