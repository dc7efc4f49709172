//! A bridge network private to one test daemon: its own bridge name, subnet and host-local data
//! dir, so tests run in parallel and leave nothing on the node.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestBridge {
    pub bridge: String,
    /// The /24 as "10.a.b".
    prefix: String,
    pub ipam_dir: PathBuf,
}

impl TestBridge {
    pub fn new(base: &Path) -> TestBridge {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).unwrap_or_default();
        // 10.200.0.0/13: far from Docker's, the default crius network's and common LANs' ranges.
        let second = 200 + (bytes[0] % 8);
        let bridge = format!("crt{:02x}{:02x}{:02x}", bytes[1], bytes[2], bytes[3]);
        TestBridge { bridge, prefix: format!("10.{second}.{}", bytes[1]), ipam_dir: base.join("cni-ipam") }
    }

    pub fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }

    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    pub fn conflist(&self) -> String {
        serde_json::json!({
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
                        "ranges": [[{"subnet": self.subnet(), "gateway": self.gateway()}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.ipam_dir,
                    }
                },
                {"type": "loopback"}
            ]
        })
        .to_string()
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
