//! Network interfaces: which exist, and which one carries the default route.

#[cfg(unix)]
use std::ffi::CString;
#[cfg(target_os = "linux")]
use std::fs;

#[cfg(unix)]
use anyhow::Context as _;
use anyhow::{Result, bail};

/// Names of the interfaces on this host, sorted.
#[cfg(target_os = "linux")]
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(std::result::Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Names of the interfaces libpcap can open, sorted (on Windows, Npcap's device names).
#[cfg(not(target_os = "linux"))]
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = pcap::Device::list()
        .map(|devices| devices.into_iter().map(|d| d.name).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Fails with one line naming the interface, and listing those that exist, when there
/// is no interface `name`.
pub fn check(name: &str) -> Result<()> {
    #[cfg(unix)]
    return index(name).map(|_| ());
    #[cfg(not(unix))]
    if list().iter().any(|n| n == name) {
        Ok(())
    } else {
        bail!(
            "interface `{name}` not found; interfaces on this host: {}",
            list().join(", ")
        )
    }
}

/// The interface's index, or an error naming it and listing those that exist.
#[cfg(unix)]
pub fn index(name: &str) -> Result<u32> {
    let c_name =
        CString::new(name).with_context(|| format!("interface name `{name}` has a NUL byte"))?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        bail!(
            "interface `{name}` not found; interfaces on this host: {}",
            list().join(", ")
        );
    }
    Ok(index)
}

/// The interface of the IPv4 default route, else of the IPv6 one.
#[cfg(target_os = "linux")]
pub fn default_route() -> Result<String> {
    let v4 = fs::read_to_string("/proc/net/route").unwrap_or_default();
    if let Some(name) = default_route_v4(&v4) {
        return Ok(name);
    }
    let v6 = fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    if let Some(name) = default_route_v6(&v6) {
        return Ok(name);
    }
    bail!(
        "no default route to take the interface from; pass --iface (interfaces on this host: {})",
        list().join(", ")
    )
}

/// libpcap's default device (its first interface that is up and not loopback): other
/// systems have no `/proc` to read the routes from.
#[cfg(not(target_os = "linux"))]
pub fn default_route() -> Result<String> {
    match pcap::Device::lookup() {
        Ok(Some(device)) => Ok(device.name),
        Ok(None) => bail!("no interface to watch; pass --iface"),
        Err(err) => bail!("cannot list the interfaces ({err}); pass --iface"),
    }
}

/// `/proc/net/route`: Iface, Destination (hex), Gateway, Flags, ...; default is 00000000.
#[cfg(any(target_os = "linux", test))]
fn default_route_v4(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let iface = fields.next()?;
        let destination = fields.next()?;
        (destination == "00000000").then(|| iface.to_owned())
    })
}

/// `/proc/net/ipv6_route`: dest, dest prefix len, ..., device last; default is `::/0`.
#[cfg(any(target_os = "linux", test))]
fn default_route_v6(table: &str) -> Option<String> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (dest, prefix, dev) = (fields.first()?, fields.get(1)?, fields.last()?);
        (dest.chars().all(|c| c == '0') && *prefix == "00" && *dev != "lo").then(|| dev.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_from_proc_tables() {
        let v4 = "Iface\tDestination\tGateway\tFlags\n\
                  eth1\t0010A8C0\t00000000\t0001\n\
                  eth0\t00000000\t0100A8C0\t0003\n";
        assert_eq!(default_route_v4(v4).as_deref(), Some("eth0"));
        assert_eq!(default_route_v4("Iface\tDestination\n"), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 wlan0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert_eq!(default_route_v6(v6).as_deref(), Some("wlan0"));
    }

    #[test]
    fn unknown_interface_names_it_and_lists_the_others() {
        let err = index("no-such-if0").unwrap_err().to_string();
        assert!(err.contains("`no-such-if0` not found"), "{err}");
        assert!(err.contains("lo"), "{err}");
    }
}
