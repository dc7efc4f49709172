//! Root integration tests of crius's hostport manager on pods set up by the CNI code: TCP via
//! the pod IP, 127.0.0.1 and another host; UDP; IPv6; hostIP; conflicts; resync after a
//! restart; nothing left behind. Tags 20..=39 (see common/mod.rs).

mod common;

use std::net::{IpAddr, TcpListener};

use common::*;
use crius_core::ErrorKind;
use crius_core::ports::network::{HostPortPod, HostPorts};
use crius_net::hostport::plan::Family;
use crius_testkit::network::{UdpEcho, udp_echo};

#[test]
fn tcp_hostport_via_pod_ip_localhost_and_another_host() {
    let t = TestNet::new(20, false);
    let tables = Tables::new(20);
    let other = other_host(20, false);
    let pod = Netns::new("crnt-20-a").unwrap();
    let mappings = vec![tcp(21080, 80, ""), tcp(0, 81, "")];
    let status = t.net.setup(&t.request("crnt20a", &pod, mappings.clone())).unwrap();
    let _httpd = Httpd::start(&pod, 80);
    HostPorts::add(&tables.0, "crnt20a", &mappings, &status.ips).unwrap();
    assert_eq!(tables.pod_chains(Family::V4), ["crnt20a"]);

    let hello = "hello from crnt-20-a\n";
    assert_eq!(eventually("pod IP", || http_get(addr(status.ips[0], 80))), hello);
    assert_eq!(eventually("127.0.0.1:hostPort", || http_get(addr("127.0.0.1", 21080))), hello);
    assert_eq!(eventually("bridge address:hostPort", || http_get(addr(t.ipv4_gateway(), 21080))), hello);
    let from_other =
        eventually("other host -> node:hostPort", || http_get_in(&other.ns.name, addr(&other.node_v4, 21080)));
    assert_eq!(from_other, hello);
    // The hairpin: the pod through its own host port.
    assert_eq!(eventually("hairpin", || http_get_in(&pod.name, addr(t.ipv4_gateway(), 21080))), hello);

    // The port is held while the pod has it.
    assert!(TcpListener::bind(("0.0.0.0", 21080)).is_err());

    HostPorts::remove(&tables.0, "crnt20a", &mappings).unwrap();
    HostPorts::remove(&tables.0, "crnt20a", &mappings).unwrap();
    assert!(tables.pod_chains(Family::V4).is_empty());
    assert!(http_get(addr("127.0.0.1", 21080)).is_err());
    TcpListener::bind(("0.0.0.0", 21080)).unwrap();
    t.net.teardown(&t.request("crnt20a", &pod, mappings)).unwrap();
    t.assert_clean();
}

#[test]
fn udp_hostport() {
    let t = TestNet::new(21, false);
    let tables = Tables::new(21);
    let other = other_host(21, false);
    let pod = Netns::new("crnt-21-a").unwrap();
    let mappings = vec![udp(21053, 5353)];
    let status = t.net.setup(&t.request("crnt21a", &pod, mappings.clone())).unwrap();
    let _echo = UdpEcho::start(&pod.path(), 5353).unwrap();
    tables.0.add("crnt21a", &mappings, &status.ips).unwrap();

    assert_eq!(eventually("udp 127.0.0.1", || udp_echo(addr("127.0.0.1", 21053), "one")), "echo:one");
    let node = other.node_v4.clone();
    let reply = eventually("udp from another host", || {
        in_netns(&other.ns.name, {
            let node = node.clone();
            move || udp_echo(addr(node, 21053), "two")
        })
    });
    assert_eq!(reply, "echo:two");
    assert!(std::net::UdpSocket::bind(("0.0.0.0", 21053)).is_err(), "the UDP port is held");

    tables.0.remove("crnt21a").unwrap();
    std::net::UdpSocket::bind(("0.0.0.0", 21053)).unwrap();
    t.net.teardown(&t.request("crnt21a", &pod, mappings)).unwrap();
    t.assert_clean();
}

#[test]
fn ipv6_hostport_from_another_host() {
    if !crius_net::default_network::host_has_ipv6() {
        eprintln!("SKIPPED: IPv6 is turned off on this host");
        return;
    }
    let t = TestNet::new(22, true);
    let tables = Tables::new(22);
    let other = other_host(22, true);
    let pod = Netns::new("crnt-22-a").unwrap();
    let mappings = vec![tcp(22080, 80, "")];
    let status = t.net.setup(&t.request("crnt22a", &pod, mappings.clone())).unwrap();
    let _httpd = Httpd::start(&pod, 80);
    tables.0.add("crnt22a", &mappings, &status.ips).unwrap();
    assert_eq!(tables.pod_chains(Family::V6), ["crnt22a"]);

    let hello = "hello from crnt-22-a\n";
    let v6 = eventually("other host -> [node]:hostPort", || http_get_in(&other.ns.name, addr(&other.node_v6, 22080)));
    assert_eq!(v6, hello);
    // The same mapping answers on IPv4 too (no hostIP: every family the pod has).
    assert_eq!(eventually("v4", || http_get_in(&other.ns.name, addr(&other.node_v4, 22080))), hello);
    // And from the node itself on its own IPv6 address.
    assert_eq!(eventually("node v6", || http_get(addr(&other.node_v6, 22080))), hello);

    tables.0.remove("crnt22a").unwrap();
    assert!(tables.pod_chains(Family::V6).is_empty());
    t.net.teardown(&t.request("crnt22a", &pod, mappings)).unwrap();
    t.assert_clean();
}

#[test]
fn host_ip_limits_the_port_to_one_address() {
    let t = TestNet::new(23, false);
    let tables = Tables::new(23);
    let other = other_host(23, false);
    let pod = Netns::new("crnt-23-a").unwrap();
    let mappings = vec![tcp(23080, 80, &other.node_v4)];
    let status = t.net.setup(&t.request("crnt23a", &pod, mappings.clone())).unwrap();
    let _httpd = Httpd::start(&pod, 80);
    tables.0.add("crnt23a", &mappings, &status.ips).unwrap();

    let hello = "hello from crnt-23-a\n";
    assert_eq!(eventually("hostIP", || http_get_in(&other.ns.name, addr(&other.node_v4, 23080))), hello);
    // Not on the node's other addresses.
    assert!(http_get(addr("127.0.0.1", 23080)).is_err());
    assert!(http_get(addr(t.ipv4_gateway(), 23080)).is_err());
    // Held on that address only: the same port elsewhere is free.
    TcpListener::bind(("127.0.0.1", 23080)).unwrap();
    assert!(TcpListener::bind((other.node_v4.as_str(), 23080)).is_err());

    tables.0.remove("crnt23a").unwrap();
    t.net.teardown(&t.request("crnt23a", &pod, mappings)).unwrap();
    t.assert_clean();
}

/// Conflicts need no real pod: the manager is given IPs (no traffic is sent).
#[test]
fn conflicts_fail_naming_the_port_and_leave_nothing() {
    require_root_and_plugins();
    let tables = Tables::new(24);
    let ip: Vec<IpAddr> = vec!["10.213.24.2".parse().unwrap()];
    let ports: &dyn HostPorts = &tables.0;
    ports.add("crnt24a", &[tcp(24080, 80, "")], &ip).unwrap();

    // Another pod on the same port.
    let err = ports.add("crnt24b", &[tcp(24081, 80, ""), tcp(24080, 80, "")], &ip).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("host port 24080/tcp on 0.0.0.0 is already in use"), "{err}");
    assert_eq!(tables.pod_chains(Family::V4), ["crnt24a"]);
    // Its other port was not kept either.
    TcpListener::bind(("0.0.0.0", 24081)).unwrap();

    // A port another process has.
    let squatter = TcpListener::bind(("127.0.0.1", 24082)).unwrap();
    let err = ports.add("crnt24c", &[tcp(24082, 80, "127.0.0.1")], &ip).unwrap_err();
    assert!(err.to_string().contains("host port 24082/tcp on 127.0.0.1"), "{err}");
    drop(squatter);

    // Bad mappings.
    let err = ports.add("crnt24d", &[tcp(24083, 80, "fd00::1")], &ip).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = ports.add("crnt24d", &[tcp(24083, 80, "203.0.113.9")], &ip).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("not an address of this node"), "{err}");
    assert_eq!(tables.pod_chains(Family::V4), ["crnt24a"]);

    // UDP and TCP on one number are different ports.
    ports.add("crnt24e", &[udp(24080, 53)], &ip).unwrap();
    assert_eq!(tables.pod_chains(Family::V4), ["crnt24a", "crnt24e"]);
    // SCTP is forwarded too (held where the kernel has SCTP sockets).
    let sctp = crius_core::sandbox::model::PortMapping {
        protocol: crius_core::sandbox::model::Protocol::Sctp,
        container_port: 9,
        host_port: 24090,
        host_ip: String::new(),
    };
    ports.add("crnt24f", &[sctp], &ip).unwrap();
    let table = tables.0.nft().list_json(tables.0.table(), Family::V4).unwrap().unwrap().to_string();
    assert!(table.contains("\"protocol\":\"sctp\""), "{table}");
    ports.remove("crnt24f", &[]).unwrap();
    ports.remove("crnt24a", &[]).unwrap();
    ports.remove("crnt24e", &[]).unwrap();
    assert!(tables.pod_chains(Family::V4).is_empty());
    assert!(tables.0.held_pods().is_empty());
}

#[test]
fn resync_restores_live_pods_and_deletes_gone_ones() {
    require_root_and_plugins();
    let tables = Tables::new(25);
    let ip: Vec<IpAddr> = vec!["10.213.25.2".parse().unwrap(), "fd8a:213:19::2".parse().unwrap()];
    let live = HostPortPod { pod_id: "crnt25a".into(), mappings: vec![tcp(25080, 80, "")], ips: ip.clone() };
    let first = crius_net::HostPortManager::new(tables.0.table(), 0x2000);
    first.add("crnt25a", &live.mappings, &ip).unwrap();
    first.add("crnt25b", &[tcp(25081, 80, "")], &ip).unwrap();

    // A restart: the sockets close with the old manager, the rules stay in the kernel.
    drop(first);
    assert_eq!(tables.pod_chains(Family::V4), ["crnt25a", "crnt25b"]);
    drop(TcpListener::bind(("0.0.0.0", 25080)).unwrap());
    let restarted = crius_net::HostPortManager::new(tables.0.table(), 0x2000);

    let report = HostPorts::resync(&restarted, std::slice::from_ref(&live)).unwrap();
    assert_eq!(report.restored, ["crnt25a"]);
    assert_eq!(report.removed, ["crnt25b"]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(tables.pod_chains(Family::V4), ["crnt25a"]);
    assert_eq!(tables.pod_chains(Family::V6), ["crnt25a"]);
    assert!(TcpListener::bind(("0.0.0.0", 25080)).is_err(), "the live pod's port is held again");
    TcpListener::bind(("0.0.0.0", 25081)).unwrap();
    restarted.remove("crnt25a").unwrap();
}
