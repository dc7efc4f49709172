//! nftables scripts for crius's hostport tables, rendered as text for `nft -f -` (one atomic
//! transaction per call).
//!
//! Layout of each family's table (`ip <name>`, `ip6 <name>`):
//!
//! ```text
//! chain prerouting  (nat, dstnat)  fib daddr type local jump hostports   # from other hosts
//! chain output      (nat, -100)    fib daddr type local jump hostports   # from the node itself
//! chain postrouting (nat, srcnat)  meta mark & MARK == MARK masquerade   # localhost, hairpin
//! chain hostports                  jump pod-<id>, one rule per pod with ports in this family
//! chain pod-<id>                   per mapping: mark rules, then dnat to podIP:containerPort
//! ```
//!
//! The skeleton is re-rendered (flush + add) in every transaction, so it heals itself and never
//! duplicates; the dispatch chain is rebuilt from the pods that have chains, so removing a pod
//! needs no rule handles.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

use super::plan::{Family, Forward};

/// A pod's chain in one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodChain {
    pub pod_id: String,
    pub forwards: Vec<Forward>,
    /// The host interface that leads to the pod (its bridge or veth): connections coming in
    /// from it (pods, the pod itself) are masqueraded so replies come back through the node.
    pub pod_iface: Option<String>,
}

/// One family's change: pods whose chains are (re)written, pods whose chains go, and every pod
/// that keeps a chain (for the dispatch chain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyChange {
    pub upsert: Vec<PodChain>,
    pub delete: Vec<String>,
    pub dispatch: BTreeSet<String>,
}

pub const POD_CHAIN_PREFIX: &str = "pod-";

pub fn pod_chain_name(pod_id: &str) -> String {
    format!("{POD_CHAIN_PREFIX}{pod_id}")
}

/// The script for one family: skeleton, dispatch, pod chains written and deleted.
pub fn render_family(table: &str, family: Family, mark: u32, change: &FamilyChange) -> String {
    let f = family.nft();
    let mut s = String::new();
    let _ = writeln!(s, "add table {f} {table}");
    let _ =
        writeln!(s, "add chain {f} {table} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}");
    let _ = writeln!(s, "add chain {f} {table} output {{ type nat hook output priority -100; policy accept; }}");
    let _ = writeln!(
        s,
        "add chain {f} {table} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"
    );
    let _ = writeln!(s, "add chain {f} {table} hostports");
    for chain in ["prerouting", "output", "postrouting", "hostports"] {
        let _ = writeln!(s, "flush chain {f} {table} {chain}");
    }
    let _ = writeln!(s, "add rule {f} {table} prerouting fib daddr type local jump hostports");
    let _ = writeln!(s, "add rule {f} {table} output fib daddr type local jump hostports");
    let _ = writeln!(s, "add rule {f} {table} postrouting meta mark & {mark:#x} == {mark:#x} masquerade");
    for pod in &change.upsert {
        let chain = pod_chain_name(&pod.pod_id);
        let _ = writeln!(s, "add chain {f} {table} {chain}");
        let _ = writeln!(s, "flush chain {f} {table} {chain}");
        for fwd in &pod.forwards {
            for rule in forward_rules(fwd, mark, pod.pod_iface.as_deref()) {
                let _ = writeln!(s, "add rule {f} {table} {chain} {rule}");
            }
        }
    }
    for pod_id in &change.dispatch {
        let _ = writeln!(s, "add rule {f} {table} hostports jump {}", pod_chain_name(pod_id));
    }
    // After the dispatch flush above dropped the jumps to them; a chain must be empty to go.
    for pod_id in &change.delete {
        let chain = pod_chain_name(pod_id);
        let _ = writeln!(s, "flush chain {f} {table} {chain}");
        let _ = writeln!(s, "delete chain {f} {table} {chain}");
    }
    s
}

/// The rules of one mapping, in order: masquerade marks, then the DNAT (which ends the chain
/// for the packet).
pub fn forward_rules(fwd: &Forward, mark: u32, pod_iface: Option<&str>) -> Vec<String> {
    let f = fwd.family.nft();
    let mut matcher = String::new();
    if let Some(ip) = fwd.host_ip {
        let _ = write!(matcher, "{f} daddr {ip} ");
    }
    let _ = write!(matcher, "{} dport {}", fwd.protocol.name(), fwd.host_port);
    let set_mark = format!("meta mark set meta mark | {mark:#x}");
    let mut rules = Vec::new();
    // 127.0.0.0/8 cannot be a source off the node: masquerade to the pod-facing address (the
    // node also needs route_localnet on that interface). IPv6 has no equivalent for ::1.
    if fwd.family == Family::V4 {
        rules.push(format!("{matcher} ip saddr 127.0.0.0/8 {set_mark}"));
    }
    if let Some(iface) = pod_iface {
        rules.push(format!("{matcher} iifname \"{iface}\" {set_mark}"));
    }
    let target = match fwd.pod_ip {
        IpAddr::V4(ip) => format!("{ip}:{}", fwd.container_port),
        IpAddr::V6(ip) => format!("[{ip}]:{}", fwd.container_port),
    };
    rules.push(format!("{matcher} dnat to {target}"));
    rules
}

/// Deleting the tables entirely (both families): crius's own tables hold nothing else.
pub fn render_delete_tables(table: &str) -> String {
    Family::ALL.iter().map(|f| format!("delete table {} {table}\n", f.nft())).collect()
}

#[cfg(test)]
mod tests {
    use super::super::plan::ProtocolKey;
    use super::*;

    fn fwd(family: Family, protocol: ProtocolKey, host_ip: Option<&str>, pod_ip: &str) -> Forward {
        Forward {
            family,
            protocol,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port: 8080,
            pod_ip: pod_ip.parse().unwrap(),
            container_port: 80,
        }
    }

    #[test]
    fn v4_tcp_every_address_with_pod_interface() {
        let rules = forward_rules(&fwd(Family::V4, ProtocolKey::Tcp, None, "10.88.0.5"), 0x2000, Some("cni0"));
        assert_eq!(
            rules,
            [
                "tcp dport 8080 ip saddr 127.0.0.0/8 meta mark set meta mark | 0x2000",
                "tcp dport 8080 iifname \"cni0\" meta mark set meta mark | 0x2000",
                "tcp dport 8080 dnat to 10.88.0.5:80",
            ]
        );
    }

    #[test]
    fn v4_udp_on_one_host_ip_without_known_interface() {
        let rules = forward_rules(&fwd(Family::V4, ProtocolKey::Udp, Some("192.0.2.10"), "10.88.0.5"), 0x4, None);
        assert_eq!(
            rules,
            [
                "ip daddr 192.0.2.10 udp dport 8080 ip saddr 127.0.0.0/8 meta mark set meta mark | 0x4",
                "ip daddr 192.0.2.10 udp dport 8080 dnat to 10.88.0.5:80",
            ]
        );
    }

    #[test]
    fn v6_sctp_and_host_ip() {
        let rules = forward_rules(&fwd(Family::V6, ProtocolKey::Sctp, None, "fd00::5"), 0x2000, Some("br0"));
        assert_eq!(
            rules,
            [
                "sctp dport 8080 iifname \"br0\" meta mark set meta mark | 0x2000",
                "sctp dport 8080 dnat to [fd00::5]:80"
            ]
        );
        let rules = forward_rules(&fwd(Family::V6, ProtocolKey::Tcp, Some("fd00::1"), "fd00::5"), 0x2000, None);
        assert_eq!(rules, ["ip6 daddr fd00::1 tcp dport 8080 dnat to [fd00::5]:80"]);
    }

    #[test]
    fn family_script_has_skeleton_dispatch_upserts_and_deletes() {
        let change = FamilyChange {
            upsert: vec![PodChain {
                pod_id: "aaa".into(),
                forwards: vec![fwd(Family::V4, ProtocolKey::Tcp, None, "10.88.0.5")],
                pod_iface: None,
            }],
            delete: vec!["ccc".into()],
            dispatch: ["aaa".to_string(), "bbb".to_string()].into(),
        };
        let script = render_family("crius", Family::V4, 0x2000, &change);
        let expected = "\
add table ip crius
add chain ip crius prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip crius output { type nat hook output priority -100; policy accept; }
add chain ip crius postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip crius hostports
flush chain ip crius prerouting
flush chain ip crius output
flush chain ip crius postrouting
flush chain ip crius hostports
add rule ip crius prerouting fib daddr type local jump hostports
add rule ip crius output fib daddr type local jump hostports
add rule ip crius postrouting meta mark & 0x2000 == 0x2000 masquerade
add chain ip crius pod-aaa
flush chain ip crius pod-aaa
add rule ip crius pod-aaa tcp dport 8080 ip saddr 127.0.0.0/8 meta mark set meta mark | 0x2000
add rule ip crius pod-aaa tcp dport 8080 dnat to 10.88.0.5:80
add rule ip crius hostports jump pod-aaa
add rule ip crius hostports jump pod-bbb
flush chain ip crius pod-ccc
delete chain ip crius pod-ccc
";
        assert_eq!(script, expected);
        let v6 = render_family("t-1", Family::V6, 0x2000, &FamilyChange::default());
        assert!(v6.starts_with("add table ip6 t-1\n"));
        assert!(!v6.contains("jump pod-"));
    }

    #[test]
    fn delete_tables_script() {
        assert_eq!(render_delete_tables("x"), "delete table ip x\ndelete table ip6 x\n");
    }
}
