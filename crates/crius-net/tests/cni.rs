//! Root integration tests of CNI invocation with the real plugins (bridge, host-local,
//! loopback from /usr/lib/cni): pods that reach each other, DEL after the netns is gone, a
//! plugin's own error, and the ADD/DEL time of the chain. Tags 1..=19 (see common/mod.rs).

mod common;

use std::time::{Duration, Instant};

use common::*;
use crius_net::NetError;
use crius_net::config::HostPortManagerKind;

#[test]
fn two_pods_reach_each_other_and_leave_nothing_behind() {
    let t = TestNet::new(1, false);
    let a = Netns::new("crnt-1-a").unwrap();
    let b = Netns::new("crnt-1-b").unwrap();
    let status_a = t.net.setup(&t.request("crnt1a", &a, vec![])).unwrap();
    let status_b = t.net.setup(&t.request("crnt1b", &b, vec![])).unwrap();
    let ip_a = status_a.primary_ip().unwrap();
    let ip_b = status_b.primary_ip().unwrap();
    assert!(ip_a.to_string().starts_with("10.213.1."), "{ip_a}");
    assert_ne!(ip_a, ip_b);
    assert_eq!(status_a.network_name, "crius-test-1");
    assert!(status_a.interfaces.iter().any(|i| i.name == "eth0" && i.sandbox == a.path()), "{:?}", status_a.interfaces);
    assert_eq!(t.allocated_ips().len(), 2);
    assert_eq!(bridge_ports(&t.bridge.0).len(), 2);
    t.net.check(&t.request("crnt1a", &a, vec![])).unwrap();

    let _httpd = Httpd::start(&b, 8080);
    let body = eventually("pod a -> pod b", || http_get_in(&a.name, addr(ip_b, 8080)));
    assert_eq!(body, "hello from crnt-1-b\n");
    // The node reaches the pod too, through the bridge.
    assert_eq!(http_get(addr(ip_b, 8080)).unwrap(), "hello from crnt-1-b\n");

    t.net.teardown(&t.request("crnt1a", &a, vec![])).unwrap();
    t.net.teardown(&t.request("crnt1b", &b, vec![])).unwrap();
    // Idempotent.
    t.net.teardown(&t.request("crnt1b", &b, vec![])).unwrap();
    t.assert_clean();
}

#[test]
fn dual_stack_pod_gets_both_ips_ipv4_first() {
    if !crius_net::default_network::host_has_ipv6() {
        eprintln!("SKIPPED: IPv6 is turned off on this host");
        return;
    }
    let t = TestNet::new(2, true);
    let a = Netns::new("crnt-2-a").unwrap();
    let status = t.net.setup(&t.request("crnt2a", &a, vec![])).unwrap();
    assert_eq!(status.ips.len(), 2, "{:?}", status.ips);
    assert!(status.ips[0].is_ipv4());
    assert!(status.ips[1].to_string().starts_with("fd8a:213:2::"), "{:?}", status.ips);
    // The loopback plugin of the chain brought lo up.
    let lo = sh(&["ip", "-n", &a.name, "-j", "link", "show", "lo"]);
    assert!(String::from_utf8_lossy(&lo.stdout).contains("\"UP\""));
    let _httpd = Httpd::start(&a, 8081);
    assert_eq!(eventually("node -> pod over IPv6", || http_get(addr(status.ips[1], 8081))), "hello from crnt-2-a\n");
    t.net.teardown(&t.request("crnt2a", &a, vec![])).unwrap();
    t.assert_clean();
}

#[test]
fn del_after_the_netns_is_gone_releases_everything() {
    let t = TestNet::new(3, false);
    let a = Netns::new("crnt-3-a").unwrap();
    let request = t.request("crnt3a", &a, vec![]);
    t.net.setup(&request).unwrap();
    assert_eq!(t.allocated_ips().len(), 1);
    a.delete();
    assert!(!std::path::Path::new(&a.path()).exists());
    t.net.teardown(&request).unwrap();
    t.assert_clean();
}

#[test]
fn a_plugin_error_carries_its_code_and_message_and_leaves_nothing() {
    let t = TestNet::new(4, false);
    let a = Netns::new("crnt-4-a").unwrap();
    // The chain's bridge can not be made: a name longer than an interface name can be.
    let conf_dir = t.dir.path().join("net.d");
    let path = conf_dir.join("10-test.conflist");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"crnt4\"", "\"crnt4-much-too-long-a-name\"");
    std::fs::write(&path, text).unwrap();
    let err = t.net.setup(&t.request("crnt4a", &a, vec![])).unwrap_err();
    match &err {
        NetError::Plugin { plugin, command, msg, .. } => {
            assert_eq!((plugin.as_str(), *command), ("bridge", "ADD"));
            assert!(!msg.is_empty());
        }
        other => panic!("not a plugin error: {other:?}"),
    }
    let core: crius_core::Error = err.into();
    assert_eq!(core.kind(), crius_core::ErrorKind::Internal);
    t.assert_clean();
}

/// `hostport_manager = "cni"`: the mappings go to the portmap plugin as its portMappings
/// capability, and it forwards them (with iptables).
#[test]
fn portmap_plugin_gets_the_port_mappings_when_it_owns_host_ports() {
    let portmap = serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}});
    let _cleanup = PortmapTopChains;
    let t = TestNet::build(6, false, vec![portmap], HostPortManagerKind::Cni);
    let a = Netns::new("crnt-6-a").unwrap();
    let request = t.request("crnt6a", &a, vec![tcp(26080, 80, ""), tcp(0, 81, "")]);
    let status = t.net.setup(&request).unwrap();
    let _httpd = Httpd::start(&a, 80);
    let hello = "hello from crnt-6-a\n";
    assert_eq!(eventually("portmap on the bridge address", || http_get(addr(t.ipv4_gateway(), 26080))), hello);
    assert_eq!(http_get(addr(status.ips[0], 80)).unwrap(), hello);
    t.net.teardown(&request).unwrap();
    assert!(http_get(addr(t.ipv4_gateway(), 26080)).is_err());
    let rules = String::from_utf8_lossy(&sh(&["iptables-save", "-t", "nat"]).stdout).to_string();
    assert!(!rules.contains("26080"), "portmap left rules: {rules}");
    t.assert_clean();
}

/// portmap keeps its top-level chains for ever (its README says so); the test removes them
/// unless some pod of another user still has a chain under them.
struct PortmapTopChains;

impl Drop for PortmapTopChains {
    fn drop(&mut self) {
        for tool in ["iptables", "ip6tables"] {
            let rules = String::from_utf8_lossy(&sh(&[tool, "-t", "nat", "-S"]).stdout).to_string();
            if rules.contains("CNI-DN-") {
                continue;
            }
            let _ = sh(&[
                tool,
                "-t",
                "nat",
                "-D",
                "PREROUTING",
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "-j",
                "CNI-HOSTPORT-DNAT",
            ]);
            let _ = sh(&[
                tool,
                "-t",
                "nat",
                "-D",
                "OUTPUT",
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "-j",
                "CNI-HOSTPORT-DNAT",
            ]);
            let masq = ["-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"];
            let _ = sh(&[&[tool, "-t", "nat", "-D", "POSTROUTING"][..], &masq[..]].concat());
            for chain in ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"] {
                let _ = sh(&[tool, "-t", "nat", "-F", chain]);
                let _ = sh(&[tool, "-t", "nat", "-X", chain]);
            }
        }
    }
}

/// Not a check: the time of ADD and DEL of the bridge + host-local + loopback chain, printed
/// for the record (run with --nocapture).
#[test]
fn add_and_del_time_of_the_bridge_chain() {
    let t = TestNet::new(5, false);
    let a = Netns::new("crnt-5-a").unwrap();
    let request = t.request("crnt5a", &a, vec![]);
    // The first ADD also creates the bridge.
    t.net.setup(&request).unwrap();
    t.net.teardown(&request).unwrap();
    let mut adds = Vec::new();
    let mut dels = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        t.net.setup(&request).unwrap();
        adds.push(start.elapsed());
        let start = Instant::now();
        t.net.teardown(&request).unwrap();
        dels.push(start.elapsed());
    }
    adds.sort();
    dels.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "CNI bridge+host-local+loopback over 10 runs: ADD median {:.1} ms (min {:.1}, max {:.1}); DEL median {:.1} ms (min {:.1}, max {:.1})",
        ms(adds[5]),
        ms(adds[0]),
        ms(adds[9]),
        ms(dels[5]),
        ms(dels[0]),
        ms(dels[9])
    );
    t.assert_clean();
}
