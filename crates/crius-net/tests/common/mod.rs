//! Helpers of the root integration tests: network namespaces, links, a per-test CNI network and
//! hostport tables, servers inside namespaces, and guards that clean all of it up even when a
//! test fails. Every name (namespace, bridge, veth, nft table), subnet and port is derived from
//! the test's own number, so tests run in parallel.
//!
//! Traffic goes only to loopback, to the node's own addresses and to the namespaces made here.
//! Namespaces, links, the other host and the UDP echo are crius-testkit's (the daemon's tests use
//! them too).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crius_core::ports::network::NetworkRequest;
use crius_core::sandbox::model::{PortMapping, Protocol};
use crius_net::cni::CniNetwork;
use crius_net::config::{DefaultNetworkConfig, HostPortManagerKind, NetworkConfig};
use crius_net::default_network::render_default_network;
use crius_net::hostport::HostPortManager;
use crius_net::hostport::plan::Family;
pub use crius_testkit::network::{Link, Netns, OtherHost};
use nix::sched::{CloneFlags, setns};

pub const CNI_BIN: &str = "/usr/lib/cni";

pub fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn must(args: &[&str]) {
    let out = sh(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Fails loudly (rather than passing) when the machine lacks what the tests need.
pub fn require_root_and_plugins() {
    assert!(nix::unistd::geteuid().is_root(), "crius-net's integration tests need root");
    for plugin in ["bridge", "host-local", "loopback"] {
        assert!(
            Path::new(CNI_BIN).join(plugin).exists(),
            "{CNI_BIN}/{plugin} is missing: install containernetworking-plugins (scripts/setup-test-deps.sh)"
        );
    }
}

pub fn link_exists(name: &str) -> bool {
    sh(&["ip", "link", "show", name]).status.success()
}

/// Interfaces enslaved to `bridge` (the host ends of pod veths).
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    let out = sh(&["ip", "-j", "link", "show", "master", bridge]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::json!([]));
    v.as_array().into_iter().flatten().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect()
}

/// Runs `f` on a thread that has joined the namespace `name`.
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap_or_else(|_| panic!("thread in netns failed"))
}

/// One test's network: a bridge, subnets and a host-local data dir of its own, and a CniNetwork
/// with config dir and result cache in a temp dir.
pub struct TestNet {
    pub tag: u8,
    pub dir: tempfile::TempDir,
    pub bridge: Link,
    pub net: CniNetwork,
    pub data_dir: PathBuf,
    pub name: String,
}

impl TestNet {
    /// `tag` (1..=200) numbers the test: bridge crnt<tag>, subnet 10.213.<tag>.0/24 and
    /// fd8a:213:<tag>::/64.
    pub fn new(tag: u8, ipv6: bool) -> TestNet {
        Self::build(tag, ipv6, Vec::new(), HostPortManagerKind::Crius)
    }

    /// With `extra` plugins appended to the chain, and `manager` deciding who does host ports.
    pub fn build(tag: u8, ipv6: bool, extra: Vec<serde_json::Value>, manager: HostPortManagerKind) -> TestNet {
        require_root_and_plugins();
        let dir = tempfile::tempdir().unwrap();
        let bridge = Link::claim(&format!("crnt{tag}"));
        let data_dir = dir.path().join("ipam");
        let name = format!("crius-test-{tag}");
        let mut subnets = vec![format!("10.213.{tag}.0/24")];
        if ipv6 {
            subnets.push(format!("fd8a:213:{tag:x}::/64"));
        }
        let cfg = DefaultNetworkConfig {
            name: name.clone(),
            bridge: bridge.0.clone(),
            subnets,
            // Pods here talk to the node and to each other only.
            ip_masq: false,
            data_dir: data_dir.display().to_string(),
            file_name: "10-test.conflist".into(),
        };
        let conf_dir = dir.path().join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let mut conf: serde_json::Value = serde_json::from_str(&render_default_network(&cfg, ipv6).unwrap()).unwrap();
        if let Some(plugins) = conf["plugins"].as_array_mut() {
            plugins.extend(extra);
        }
        std::fs::write(conf_dir.join(&cfg.file_name), conf.to_string()).unwrap();
        let config = NetworkConfig {
            conf_dirs: vec![conf_dir],
            bin_dirs: vec!["/opt/cni/bin".into(), CNI_BIN.into()],
            plugin_timeout_secs: 30,
            hostport_manager: manager,
            ..Default::default()
        };
        let net = CniNetwork::new(config, dir.path().join("cni/results"));
        TestNet { tag, bridge, net, data_dir, name, dir }
    }

    pub fn request(&self, pod_id: &str, ns: &Netns, mappings: Vec<PortMapping>) -> NetworkRequest {
        NetworkRequest {
            pod_id: pod_id.to_string(),
            name: format!("pod-{pod_id}"),
            namespace: "crius-net-tests".into(),
            uid: format!("uid-{pod_id}"),
            netns_path: ns.path(),
            annotations: BTreeMap::new(),
            port_mappings: mappings,
            cgroup_parent: String::new(),
        }
    }

    /// IPs host-local still has allocated (files named by address in its data dir).
    pub fn allocated_ips(&self) -> Vec<String> {
        let dir = self.data_dir.join(&self.name);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect()
    }

    pub fn cached_pods(&self) -> usize {
        std::fs::read_dir(self.net.cache().dir()).map(|d| d.count()).unwrap_or(0)
    }

    /// Nothing of any pod is left: no veth on the bridge, no allocation, no cached result.
    pub fn assert_clean(&self) {
        // A deleted namespace is destroyed by the kernel a moment later, and its veth with it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bridge_ports(&self.bridge.0).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(bridge_ports(&self.bridge.0), Vec::<String>::new(), "veths left on {}", self.bridge.0);
        assert_eq!(self.allocated_ips(), Vec::<String>::new(), "IP allocations left");
        assert_eq!(self.cached_pods(), 0, "cached CNI results left");
    }

    pub fn ipv4_gateway(&self) -> String {
        format!("10.213.{}.1", self.tag)
    }
}

/// crius's hostport tables under a test-specific name, deleted on drop.
pub struct Tables(pub HostPortManager);

impl Tables {
    pub fn new(tag: u8) -> Tables {
        let manager = HostPortManager::new(format!("crnt-{tag}"), 0x2000);
        let _ = manager.delete_tables();
        Tables(manager)
    }

    pub fn pod_chains(&self, family: Family) -> Vec<String> {
        self.0.nft().pod_chains(self.0.table(), family).unwrap()
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        let _ = self.0.delete_tables();
    }
}

/// `busybox httpd` serving "hello from <ns>" on `port` inside a namespace; killed on drop.
pub struct Httpd {
    child: Child,
    _root: tempfile::TempDir,
}

impl Httpd {
    pub fn start(ns: &Netns, port: u16) -> Httpd {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), format!("hello from {}\n", ns.name)).unwrap();
        let root_path = root.path().display().to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "busybox", "httpd", "-f", "-p", &port.to_string(), "-h", &root_path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let httpd = Httpd { child, _root: root };
        let name = ns.name.clone();
        let ready = in_netns(&ns.name, move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return true;
                }
                thread::sleep(Duration::from_millis(20));
            }
            false
        });
        assert!(ready, "httpd in {name} did not listen on {port}");
        httpd
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET / from `addr`, with a bounded wait; the body, or the error.
pub fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read from {addr}: {e}"))?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

pub fn http_get_in(ns: &str, addr: SocketAddr) -> Result<String, String> {
    in_netns(ns, move || http_get(addr))
}

/// The other host of test `tag`: namespace crnt-<tag>-ext on veth crntx<tag>, the node at
/// 10.214.<tag>.1 (and fd8a:214:<tag>::1).
pub fn other_host(tag: u8, ipv6: bool) -> OtherHost {
    let v6 = format!("fd8a:214:{tag:x}");
    OtherHost::create(
        &format!("crnt-{tag}-ext"),
        &format!("crntx{tag}"),
        &format!("10.214.{tag}"),
        ipv6.then_some(&*v6),
    )
    .unwrap()
}

pub fn tcp(host_port: i32, container_port: i32, host_ip: &str) -> PortMapping {
    PortMapping { protocol: Protocol::Tcp, container_port, host_port, host_ip: host_ip.into() }
}

pub fn udp(host_port: i32, container_port: i32) -> PortMapping {
    PortMapping { protocol: Protocol::Udp, container_port, host_port, host_ip: String::new() }
}

pub fn addr(ip: impl std::fmt::Display, port: u16) -> SocketAddr {
    let ip: IpAddr = ip.to_string().parse().unwrap();
    SocketAddr::new(ip, port)
}

/// Retries `f` for a moment: a fresh veth may still be coming up.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}
