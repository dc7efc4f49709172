//! Checks of a pod config that need no outside facts. Messages name the field and what is allowed.

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::sandbox::model::{DnsConfig, NamespaceMode, PodConfig, PortMapping};

/// Kubernetes' limits on the search list (validation.MaxDNSSearchPaths, MaxDNSSearchListChars).
pub const MAX_DNS_SEARCHES: usize = 32;
pub const MAX_DNS_SEARCH_CHARS: usize = 2048;
/// HOST_NAME_MAX on Linux.
pub const MAX_HOSTNAME_LEN: usize = 64;

pub fn validate_pod_config(config: &PodConfig) -> Result<()> {
    let md = &config.metadata;
    for (field, value) in [("name", &md.name), ("namespace", &md.namespace), ("uid", &md.uid)] {
        if value.is_empty() {
            return Err(Error::invalid(format!("pod sandbox config: metadata.{field} must not be empty")));
        }
    }
    validate_hostname(&config.hostname)?;
    if let Some(dns) = &config.dns {
        validate_dns(dns)?;
    }
    validate_namespaces(config)?;
    let forwarded = !config.namespaces.host_network();
    for mapping in &config.port_mappings {
        validate_port_mapping(mapping, forwarded)?;
    }
    if !config.log_directory.is_empty() && !config.log_directory.starts_with('/') {
        return Err(Error::invalid(format!(
            "pod sandbox config: log_directory {:?} must be an absolute path",
            config.log_directory
        )));
    }
    super::sysctl::validate_sysctls(&config.sysctls, &config.namespaces)?;
    Ok(())
}

fn validate_hostname(hostname: &str) -> Result<()> {
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(Error::invalid(format!(
            "pod sandbox config: hostname {hostname:?} is {} bytes long; at most {MAX_HOSTNAME_LEN} are allowed",
            hostname.len()
        )));
    }
    if hostname.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(Error::invalid(format!(
            "pod sandbox config: hostname {hostname:?} contains whitespace, a control character or '/'"
        )));
    }
    Ok(())
}

pub fn validate_dns(dns: &DnsConfig) -> Result<()> {
    for server in &dns.servers {
        if server.parse::<IpAddr>().is_err() {
            return Err(Error::invalid(format!(
                "pod sandbox config: dns_config.servers entry {server:?} is not an IP address"
            )));
        }
    }
    if dns.searches.len() > MAX_DNS_SEARCHES {
        return Err(Error::invalid(format!(
            "pod sandbox config: dns_config.searches has {} domains; at most {MAX_DNS_SEARCHES} are allowed",
            dns.searches.len()
        )));
    }
    let chars = dns.searches.iter().map(String::len).sum::<usize>() + dns.searches.len().saturating_sub(1);
    if chars > MAX_DNS_SEARCH_CHARS {
        return Err(Error::invalid(format!(
            "pod sandbox config: dns_config.searches is {chars} characters long; at most {MAX_DNS_SEARCH_CHARS} are allowed"
        )));
    }
    for entry in dns.searches.iter().chain(&dns.options) {
        if entry.is_empty() || entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(format!(
                "pod sandbox config: dns_config entry {entry:?} is empty or contains whitespace"
            )));
        }
    }
    Ok(())
}

fn validate_namespaces(config: &PodConfig) -> Result<()> {
    let ns = &config.namespaces;
    for (kind, mode) in [("network", ns.network), ("ipc", ns.ipc)] {
        if !matches!(mode, NamespaceMode::Pod | NamespaceMode::Node) {
            return Err(Error::invalid(format!(
                "pod sandbox config: namespace_options.{kind} is {mode:?}; a pod's {kind} namespace can only be POD or NODE"
            )));
        }
    }
    if ns.pid == NamespaceMode::Target {
        return Err(Error::invalid(
            "pod sandbox config: namespace_options.pid TARGET applies to containers, not to pod sandboxes",
        ));
    }
    Ok(())
}

/// `forwarded`: the pod has a network of its own, so its host ports are forwarded by crius (a
/// host-network pod binds them itself, on any address).
fn validate_port_mapping(m: &PortMapping, forwarded: bool) -> Result<()> {
    if !(0..=65535).contains(&m.host_port) {
        return Err(Error::invalid(format!("pod sandbox config: host_port {} is out of range 0-65535", m.host_port)));
    }
    // hostPort <= 0 is not a host port: only the container port is declared.
    if m.host_port > 0 && !(1..=65535).contains(&m.container_port) {
        return Err(Error::invalid(format!(
            "pod sandbox config: container_port {} (mapped from host port {}) is out of range 1-65535",
            m.container_port, m.host_port
        )));
    }
    if m.host_ip.is_empty() {
        return Ok(());
    }
    let Ok(host_ip) = m.host_ip.parse::<IpAddr>() else {
        return Err(Error::invalid(format!("pod sandbox config: host_ip {:?} is not an IP address", m.host_ip)));
    };
    if forwarded && m.host_port > 0 && host_ip.is_ipv6() && host_ip.is_loopback() {
        return Err(Error::invalid(format!(
            "pod sandbox config: host port {} on host_ip {host_ip} cannot reach a pod: the kernel routes IPv6 \
             loopback traffic only on lo (IPv4 has route_localnet, IPv6 has nothing like it); use 127.0.0.1, \
             or no host_ip",
            m.host_port
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::model::PodMetadata;

    fn baseline() -> PodConfig {
        PodConfig {
            metadata: PodMetadata { name: "web".into(), uid: "u1".into(), namespace: "default".into(), attempt: 0 },
            hostname: "web".into(),
            ..Default::default()
        }
    }

    fn invalid(config: &PodConfig) -> String {
        let err = validate_pod_config(config).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        err.to_string()
    }

    #[test]
    fn baseline_is_valid() {
        validate_pod_config(&baseline()).unwrap();
    }

    #[test]
    fn empty_metadata_fields_are_refused() {
        for field in ["name", "namespace", "uid"] {
            let mut c = baseline();
            match field {
                "name" => c.metadata.name.clear(),
                "namespace" => c.metadata.namespace.clear(),
                _ => c.metadata.uid.clear(),
            }
            assert!(invalid(&c).contains(&format!("metadata.{field}")));
        }
    }

    #[test]
    fn too_many_searches() {
        let mut c = baseline();
        c.dns = Some(DnsConfig { searches: (0..33).map(|i| format!("d{i}.example")).collect(), ..Default::default() });
        assert!(invalid(&c).contains("33 domains"));
    }

    #[test]
    fn search_list_too_long() {
        let mut c = baseline();
        c.dns = Some(DnsConfig { searches: (0..30).map(|_| "a".repeat(80)).collect(), ..Default::default() });
        assert!(invalid(&c).contains("characters long"));
    }

    #[test]
    fn dns_server_must_be_an_ip() {
        let mut c = baseline();
        c.dns = Some(DnsConfig { servers: vec!["dns.example".into()], ..Default::default() });
        assert!(invalid(&c).contains("not an IP address"));
        c.dns = Some(DnsConfig { servers: vec!["10.0.0.10".into(), "fd00::a".into()], ..Default::default() });
        validate_pod_config(&c).unwrap();
    }

    #[test]
    fn hostname_too_long() {
        let mut c = baseline();
        c.hostname = "h".repeat(65);
        assert!(invalid(&c).contains("at most 64"));
    }

    #[test]
    fn network_namespace_modes() {
        let mut c = baseline();
        c.namespaces.network = NamespaceMode::Container;
        assert!(invalid(&c).contains("network"));
        let mut c = baseline();
        c.namespaces.pid = NamespaceMode::Target;
        assert!(invalid(&c).contains("TARGET"));
    }

    #[test]
    fn port_mappings() {
        let mut c = baseline();
        c.port_mappings = vec![PortMapping { container_port: 80, host_port: 0, ..Default::default() }];
        validate_pod_config(&c).unwrap();
        c.port_mappings = vec![PortMapping { container_port: 0, host_port: 8080, ..Default::default() }];
        assert!(invalid(&c).contains("container_port 0"));
        c.port_mappings = vec![PortMapping { container_port: 80, host_port: 70000, ..Default::default() }];
        assert!(invalid(&c).contains("host_port 70000"));
        c.port_mappings =
            vec![PortMapping { container_port: 80, host_port: 8080, host_ip: "nope".into(), ..Default::default() }];
        assert!(invalid(&c).contains("host_ip"));
        c.port_mappings =
            vec![PortMapping { container_port: 80, host_port: 8080, host_ip: "::1".into(), ..Default::default() }];
        assert!(invalid(&c).contains("use 127.0.0.1"));
        // Declared only (no host port), or on IPv4's loopback: fine.
        c.port_mappings[0].host_port = 0;
        validate_pod_config(&c).unwrap();
        c.port_mappings = vec![PortMapping {
            container_port: 80,
            host_port: 8080,
            host_ip: "127.0.0.1".into(),
            ..Default::default()
        }];
        validate_pod_config(&c).unwrap();
        // A host-network pod binds its ports itself, so ::1 works there.
        c.port_mappings[0].host_ip = "::1".into();
        c.namespaces.network = NamespaceMode::Node;
        validate_pod_config(&c).unwrap();
    }

    #[test]
    fn relative_log_directory() {
        let mut c = baseline();
        c.log_directory = "var/log/pods".into();
        assert!(invalid(&c).contains("absolute"));
    }
}
