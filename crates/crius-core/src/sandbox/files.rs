//! The text of a pod's /etc/hosts, /etc/resolv.conf and /etc/hostname.

use crate::sandbox::model::DnsConfig;

/// What the kubelet writes into the hosts files it manages, so pods see the same lines.
const LOCAL_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n";

/// resolv.conf from the pod's DNS config; `None` or an empty config means the node's copy.
pub fn render_resolv_conf(dns: Option<&DnsConfig>, host_resolv_conf: &str) -> String {
    let Some(dns) = dns.filter(|d| !d.is_empty()) else {
        return host_resolv_conf.to_string();
    };
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

/// /etc/hosts: the node's for a host-network pod, else the local names (the pod's own address
/// line is added once it has one).
pub fn render_hosts(host_network: bool, host_hosts: &str) -> String {
    if host_network { host_hosts.to_string() } else { LOCAL_HOSTS.to_string() }
}

/// /etc/hosts of a pod with its own network, once it has IPs: the local names plus one line
/// per pod IP with its hostname (what CRI-O writes; the kubelet's managed file has the same).
pub fn render_hosts_with_ips(ips: &[std::net::IpAddr], hostname: &str) -> String {
    let mut out = LOCAL_HOSTS.to_string();
    for ip in ips {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_config() {
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into(), "fd00::10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into(), "edns0".into()],
        };
        assert_eq!(
            render_resolv_conf(Some(&dns), "nameserver 1.1.1.1\n"),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::10\noptions ndots:5 edns0\n"
        );
    }

    #[test]
    fn resolv_conf_falls_back_to_the_node() {
        let host = "nameserver 192.0.2.1\n";
        assert_eq!(render_resolv_conf(None, host), host);
        assert_eq!(render_resolv_conf(Some(&DnsConfig::default()), host), host);
    }

    #[test]
    fn only_servers() {
        let dns = DnsConfig { servers: vec!["192.0.2.53".into()], ..Default::default() };
        assert_eq!(render_resolv_conf(Some(&dns), ""), "nameserver 192.0.2.53\n");
    }

    #[test]
    fn hosts_with_ips() {
        let ips = ["10.88.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let hosts = render_hosts_with_ips(&ips, "web-0");
        assert!(hosts.ends_with("10.88.0.5\tweb-0\nfd00::5\tweb-0\n"), "{hosts}");
    }

    #[test]
    fn hosts() {
        assert!(render_hosts(false, "x").starts_with("127.0.0.1\tlocalhost\n"));
        assert_eq!(render_hosts(true, "127.0.0.1 node\n"), "127.0.0.1 node\n");
    }
}
