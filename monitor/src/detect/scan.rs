//! Port scans: a source that tries at least N distinct destination ports, or M
//! distinct destination hosts, within the window. The counting is the backend's (in
//! the kernel, with bounded memory per source); this decides on its estimates.

use std::net::IpAddr;

use crate::{
    alert::{AlertKind, AlertSource, Finding, Unit},
    config::PortScanConfig,
};

/// What the backend estimates for one source over the last `port_scan.window`.
/// Count only what the source initiates (TCP SYNs without ACK, UDP, and other first
/// packets), not replies to the host's own connections: a server answering a
/// browser reaches many of the host's ephemeral ports without scanning anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanEstimate {
    pub distinct_ports: u32,
    pub distinct_hosts: u32,
}

pub fn port_scan(
    ip: IpAddr,
    estimate: &ScanEstimate,
    config: &PortScanConfig,
    target: &str,
) -> Option<Finding> {
    let (ports, hosts) = (estimate.distinct_ports, estimate.distinct_hosts);
    let (port_limit, host_limit) = (config.ports.get(), config.hosts.get());
    let by_ports = ports >= port_limit;
    let by_hosts = hosts >= host_limit;
    if !by_ports && !by_hosts {
        return None;
    }
    // Report the measure that is further over its threshold.
    let ports_excess = f64::from(ports) / f64::from(port_limit);
    let hosts_excess = f64::from(hosts) / f64::from(host_limit);
    let (value, threshold, unit) = if by_ports && (!by_hosts || ports_excess >= hosts_excess) {
        (ports, port_limit, Unit::Ports)
    } else {
        (hosts, host_limit, Unit::Hosts)
    };
    let message = format!(
        "{ports} ports across {hosts} hosts in the last {} (threshold {port_limit} ports or {host_limit} hosts)",
        humantime::format_duration(config.window)
    );
    Some(Finding {
        kind: AlertKind::PortScan,
        source: AlertSource::Ip(ip),
        target: target.to_owned(),
        value: f64::from(value),
        threshold: f64::from(threshold),
        unit,
        message,
        flow: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(ports: u32, hosts: u32) -> Option<Finding> {
        let estimate = ScanEstimate {
            distinct_ports: ports,
            distinct_hosts: hosts,
        };
        port_scan(
            "192.0.2.44".parse().unwrap(),
            &estimate,
            &PortScanConfig::default(),
            "eth0",
        )
    }

    #[test]
    fn many_ports_on_one_host() {
        // nmap -sS / -sT against the monitored host: the top 1000 ports.
        let f = scan(1_000, 1).unwrap();
        assert_eq!(
            (f.kind, f.source.to_string()),
            (AlertKind::PortScan, "192.0.2.44".into())
        );
        assert_eq!(
            (f.value, f.threshold, f.unit),
            (1_000.0, 100.0, Unit::Ports)
        );
        assert_eq!(
            f.message,
            "1000 ports across 1 hosts in the last 1m (threshold 100 ports or 20 hosts)"
        );
    }

    #[test]
    fn one_port_on_many_hosts() {
        let f = scan(1, 40).unwrap();
        assert_eq!((f.value, f.threshold, f.unit), (40.0, 20.0, Unit::Hosts));
        // The predecessor's example: 180 ports across 40 hosts; ports are further over.
        assert_eq!(scan(180, 40).unwrap().unit, Unit::Hosts);
        assert_eq!(scan(250, 40).unwrap().unit, Unit::Ports);
    }

    #[test]
    fn ordinary_clients_are_not_scans() {
        assert!(scan(3, 1).is_none()); // ssh, http, https
        assert!(scan(99, 19).is_none());
        assert!(scan(0, 0).is_none());
    }
}
