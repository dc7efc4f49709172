//! Networks of tests: a bridge network private to one test daemon (its own bridge name, subnet
//! and host-local data dir, so tests run in parallel and leave nothing on the node); network
//! namespaces, links and "another host" (a namespace on a veth of its own) that go on drop; and
//! servers and clients inside namespaces.
//!
//! Traffic goes only to loopback, to the node's own addresses and to namespaces made here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

pub struct TestBridge {
    pub bridge: String,
    /// The /24 as "10.a.b".
    prefix: String,
    /// The /64 as "fd8a:200:x" for a dual-stack bridge.
    v6_prefix: Option<String>,
    pub ipam_dir: PathBuf,
}

impl TestBridge {
    pub fn new(base: &Path) -> TestBridge {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).unwrap_or_default();
        // 10.200.0.0/13: far from Docker's, the default crius network's and common LANs' ranges.
        let second = 200 + (bytes[0] % 8);
        let bridge = format!("crt{:02x}{:02x}{:02x}", bytes[1], bytes[2], bytes[3]);
        TestBridge {
            bridge,
            prefix: format!("10.{second}.{}", bytes[1]),
            v6_prefix: None,
            ipam_dir: base.join("cni-ipam"),
        }
    }

    /// A bridge whose pods get an IPv4 address (the primary, listed first) and an IPv6 one, in
    /// a /64 that follows the /24 (two bridges that differ in one differ in the other).
    pub fn dual_stack(base: &Path) -> TestBridge {
        let mut bridge = TestBridge::new(base);
        let second: u8 = bridge.prefix.split('.').nth(1).and_then(|p| p.parse().ok()).unwrap_or_default();
        let third: u8 = bridge.prefix.split('.').nth(2).and_then(|p| p.parse().ok()).unwrap_or_default();
        bridge.v6_prefix = Some(format!("fd8a:200:{:x}", u16::from_be_bytes([second, third])));
        bridge
    }

    /// The /64 of a dual-stack bridge ("fd8a:200:x::/64").
    pub fn subnet_v6(&self) -> Option<String> {
        self.v6_prefix.as_ref().map(|p| format!("{p}::/64"))
    }

    pub fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }

    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    pub fn conflist(&self) -> String {
        self.conflist_with(&[])
    }

    /// The conflist with `extra` plugins appended to the chain.
    pub fn conflist_with(&self, extra: &[serde_json::Value]) -> String {
        let mut ranges = vec![serde_json::json!([{"subnet": self.subnet(), "gateway": self.gateway()}])];
        let mut routes = vec![serde_json::json!({"dst": "0.0.0.0/0"})];
        if let Some(p) = &self.v6_prefix {
            ranges.push(serde_json::json!([{"subnet": format!("{p}::/64"), "gateway": format!("{p}::1")}]));
            routes.push(serde_json::json!({"dst": "::/0"}));
        }
        let mut conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("crius-test-{}", self.bridge),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": ranges,
                        "routes": routes,
                        "dataDir": self.ipam_dir,
                    }
                },
                {"type": "loopback"}
            ]
        });
        if let Some(plugins) = conf["plugins"].as_array_mut() {
            plugins.extend(extra.iter().cloned());
        }
        conf.to_string()
    }

    /// IP allocations host-local still holds, and veths still on the bridge.
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        for network in list(&self.ipam_dir) {
            for entry in list(&network) {
                let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if name.parse::<std::net::IpAddr>().is_ok() {
                    out.push(format!("IP allocation {}", entry.display()));
                }
            }
        }
        let ports = Command::new("ip").args(["-o", "link", "show", "master", &self.bridge]).output();
        if let Ok(o) = ports {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                out.push(format!("link on {}: {}", self.bridge, line.split(':').nth(1).unwrap_or(line).trim()));
            }
        }
        out
    }

    /// Deletes the bridge (the bridge plugin leaves it when the last pod goes).
    pub fn remove(&self) -> Vec<String> {
        let exists = Path::new("/sys/class/net").join(&self.bridge).exists();
        if !exists {
            return Vec::new();
        }
        match Command::new("ip").args(["link", "del", &self.bridge]).output() {
            Ok(o) if o.status.success() => Vec::new(),
            Ok(o) => vec![format!("ip link del {}: {}", self.bridge, String::from_utf8_lossy(&o.stderr).trim())],
            Err(e) => vec![format!("ip link del {}: {e}", self.bridge)],
        }
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

/// Runs a command, failing with its stderr when it exits non-zero.
fn must(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| Error::context(format!("{args:?}"), e))?;
    if !out.status.success() {
        return Err(Error::msg(format!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Runs a command whose failure does not matter (deleting what may not exist).
fn quietly(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// A network namespace made with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Makes `name` (deleting a leftover of an earlier run that was killed), with lo up and no
    /// IPv6 duplicate address detection (as crius's pod init: DAD would hold traffic for seconds).
    pub fn new(name: &str) -> Result<Netns> {
        quietly(&["ip", "netns", "del", name]);
        must(&["ip", "netns", "add", name])?;
        // Owned from here: a failure below still deletes it.
        let ns = Netns { name: name.to_string() };
        must(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        let dad =
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad";
        quietly(&["ip", "netns", "exec", name, "sh", "-c", dad]);
        Ok(ns)
    }

    /// `/run/netns/<name>`, for setns or CNI_NETNS.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Deletes it now (the drop then has nothing to do).
    pub fn delete(&self) {
        quietly(&["ip", "netns", "del", &self.name]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A host link deleted on drop (a test's veth, a bridge a plugin made).
#[derive(Debug)]
pub struct Link(pub String);

impl Link {
    /// Claims the name, deleting a leftover of an earlier run that was killed.
    pub fn claim(name: &str) -> Link {
        quietly(&["ip", "link", "del", name]);
        Link(name.to_string())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        quietly(&["ip", "link", "del", &self.0]);
    }
}

/// A second network namespace that plays another host: a veth pair from the node into it, on a
/// /24 (and a /64) of its own, the node at .1 (::1) and the other host at .2 (::2). Traffic from
/// it reaches the node's own addresses as a remote client's would (PREROUTING, not OUTPUT).
/// Namespace and veth go on drop.
#[derive(Debug)]
pub struct OtherHost {
    // Field order is drop order: the namespace (and the veth end in it) first.
    pub ns: Netns,
    pub host_side: Link,
    /// The node's address on the link: where the other host sends to.
    pub node_v4: String,
    /// The other host's own address.
    pub peer_v4: String,
    /// Empty without IPv6.
    pub node_v6: String,
    pub peer_v6: String,
}

impl OtherHost {
    /// Names and subnets given: `v4_prefix` is "10.a.b" (the /24), `v6_prefix` "fd8a:x:y" (the
    /// /64) or None.
    pub fn create(ns_name: &str, link_name: &str, v4_prefix: &str, v6_prefix: Option<&str>) -> Result<OtherHost> {
        let ns = Netns::new(ns_name)?;
        let host_side = Link::claim(link_name);
        must(&["ip", "link", "add", link_name, "type", "veth", "peer", "name", "eth0", "netns", ns_name])?;
        let (node_v4, peer_v4) = (format!("{v4_prefix}.1"), format!("{v4_prefix}.2"));
        must(&["ip", "addr", "add", &format!("{node_v4}/24"), "dev", link_name])?;
        must(&["ip", "-n", ns_name, "addr", "add", &format!("{peer_v4}/24"), "dev", "eth0"])?;
        let (mut node_v6, mut peer_v6) = (String::new(), String::new());
        if let Some(p) = v6_prefix {
            (node_v6, peer_v6) = (format!("{p}::1"), format!("{p}::2"));
            must(&["ip", "addr", "add", &format!("{node_v6}/64"), "dev", link_name, "nodad"])?;
            must(&["ip", "-n", ns_name, "addr", "add", &format!("{peer_v6}/64"), "dev", "eth0", "nodad"])?;
        }
        must(&["ip", "link", "set", link_name, "up"])?;
        must(&["ip", "-n", ns_name, "link", "set", "eth0", "up"])?;
        Ok(OtherHost { ns, host_side, node_v4, peer_v4, node_v6, peer_v6 })
    }

    /// With random names and a random /24 in 10.216.0.0/13 (and /64 in fd8a:216::/32) that no
    /// interface of the node has, so tests in parallel processes do not collide.
    pub fn unique(ipv6: bool) -> Result<OtherHost> {
        let used =
            Command::new("ip").args(["-o", "addr", "show"]).output().map_err(|e| Error::context("ip addr", e))?;
        let used = String::from_utf8_lossy(&used.stdout).into_owned();
        for _ in 0..16 {
            let mut b = [0u8; 3];
            getrandom::fill(&mut b).map_err(|e| Error::context("getrandom", e))?;
            let v4 = format!("10.{}.{}", 216 + b[0] % 8, b[1]);
            // As `ip` prints it (no leading zeros), for the check below.
            let v6 = format!("fd8a:216:{:x}", u16::from_be_bytes([b[1], b[2]]) | 1);
            if used.contains(&format!(" {v4}.")) || used.contains(&format!(" {v6}:")) {
                continue;
            }
            let tag = format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]);
            return Self::create(&format!("crius-oh-{tag}"), &format!("croh{tag}"), &v4, ipv6.then_some(v6.as_str()));
        }
        Err(Error::msg("no free subnet for another host in 10.216.0.0/13 after 16 tries"))
    }

    pub fn netns_path(&self) -> String {
        self.ns.path()
    }
}

/// Runs `f` on a thread of its own that has joined the network namespace at `netns_path`
/// (setns changes only the calling thread, so the test process stays where it is).
pub fn in_netns<T: Send + 'static>(netns_path: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let file = fs::File::open(netns_path).map_err(|e| Error::context(format!("opening {netns_path}"), e))?;
    let path = netns_path.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::context(format!("setns into {path}"), e))?;
        Ok(f())
    })
    .join()
    .map_err(|_| Error::msg(format!("the thread in {netns_path} panicked")))?
}

/// A UDP echo server ("echo:" + the datagram) inside a network namespace, on a thread that
/// joined it; stops on drop.
pub struct UdpEcho {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpEcho {
    pub fn start(netns_path: &str, port: u16) -> Result<UdpEcho> {
        use std::sync::atomic::Ordering;
        let file = fs::File::open(netns_path).map_err(|e| Error::context(format!("opening {netns_path}"), e))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let bound = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| std::net::UdpSocket::bind(("0.0.0.0", port)))
                .and_then(|s| s.set_read_timeout(Some(std::time::Duration::from_millis(100))).map(|()| s));
            let socket = match bound {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut buf = [0u8; 1500];
            while !stopping.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        let echo = UdpEcho { stop, thread: Some(thread) };
        match ready_rx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(echo),
            Ok(Err(e)) => Err(Error::msg(format!("UDP echo on {port} in {netns_path}: {e}"))),
            Err(_) => Err(Error::msg(format!("UDP echo on {port} in {netns_path} did not start"))),
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One datagram to `addr` and its echo, from the calling thread's namespace; a few tries (the
/// first datagram may wait on neighbour discovery, or be lost).
pub fn udp_echo(addr: std::net::SocketAddr, payload: &str) -> std::result::Result<String, String> {
    let bind: std::net::SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(std::time::Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        socket.send_to(payload.as_bytes(), addr).map_err(|e| format!("send to {addr}: {e}"))?;
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    Err(format!("no echo from {addr}"))
}

/// A chained CNI plugin script that is slow on one command (`ADD` or `DEL`): it writes its pid to
/// `<add|del>-started` next to itself, then waits until a `fast` file appears there (30 s at
/// most), then runs the real loopback plugin. Other commands, and this one once `fast` exists,
/// are never slow.
pub fn slow_cni_plugin(cni_command: &str) -> String {
    let marker = format!("{}-started", cni_command.to_ascii_lowercase());
    format!(
        r#"#!/bin/sh
dir=$(dirname "$0")
if [ "$CNI_COMMAND" = {cni_command} ] && [ ! -e "$dir/fast" ]; then
    echo $$ > "$dir/{marker}.tmp"
    mv "$dir/{marker}.tmp" "$dir/{marker}"
    i=0
    while [ ! -e "$dir/fast" ] && [ "$i" -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
fi
exec /usr/lib/cni/loopback
"#
    )
}
