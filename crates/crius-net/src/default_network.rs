//! The network crius writes when a node has none (`make run`'s setup): a bridge with host-local
//! IPAM over a private subnet per family, then loopback. No portmap: crius forwards host ports
//! itself (with `hostport_manager = "cni"`, add portmap to the chain by hand).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cni::conf::select;
use crate::config::{DefaultNetworkConfig, NetworkConfig};
use crate::error::NetError;

/// The conflist for `cfg`; the IPv6 subnet only when `ipv6` (the host has IPv6 on).
pub fn render_default_network(cfg: &DefaultNetworkConfig, ipv6: bool) -> Result<String, NetError> {
    let bad = |reason: String| NetError::InvalidRequest { what: "network.default_network".into(), reason };
    let mut ranges = Vec::new();
    let mut routes = Vec::new();
    let mut families = Vec::new();
    for subnet in &cfg.subnets {
        let (addr, len) = subnet.split_once('/').ok_or_else(|| bad(format!("subnet {subnet:?} is not a CIDR")))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad(format!("subnet {subnet:?} is not a CIDR")))?;
        let len: u8 = len.parse().map_err(|_| bad(format!("subnet {subnet:?} has a bad prefix length")))?;
        let max_len = if addr.is_ipv4() { 30 } else { 126 };
        if len > max_len {
            return Err(bad(format!("subnet {subnet:?} is too small for pods")));
        }
        if families.contains(&addr.is_ipv4()) {
            return Err(bad(format!("subnet {subnet:?}: give at most one subnet per IP family")));
        }
        families.push(addr.is_ipv4());
        if addr.is_ipv6() && !ipv6 {
            continue;
        }
        ranges.push(json!([{ "subnet": subnet }]));
        routes.push(json!({ "dst": if addr.is_ipv4() { "0.0.0.0/0" } else { "::/0" } }));
    }
    if ranges.is_empty() {
        return Err(bad("no subnet usable on this host".into()));
    }
    let mut ipam = json!({ "type": "host-local", "ranges": ranges, "routes": routes });
    if !cfg.data_dir.is_empty() {
        ipam["dataDir"] = Value::String(cfg.data_dir.clone());
    }
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": cfg.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": cfg.bridge,
                "isGateway": true,
                "ipMasq": cfg.ip_masq,
                "hairpinMode": true,
                "ipam": ipam
            },
            { "type": "loopback" }
        ]
    });
    serde_json::to_string_pretty(&conf).map_err(|e| bad(e.to_string()))
}

/// Whether the host has IPv6 turned on.
pub fn host_has_ipv6() -> bool {
    fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").is_ok_and(|v| v.trim() == "0")
}

/// Writes the default network into the first config directory unless a usable network config
/// exists already. Returns the file written, or None when there was one.
pub fn ensure_default_network(config: &NetworkConfig) -> Result<Option<PathBuf>, NetError> {
    if select(&config.conf_dirs, &config.network_name).found.is_some() {
        return Ok(None);
    }
    let text = render_default_network(&config.default_network, host_has_ipv6())?;
    let dir = config
        .conf_dirs
        .first()
        .ok_or_else(|| NetError::InvalidRequest { what: "network.conf_dirs".into(), reason: "empty".into() })?;
    let path = dir.join(&config.default_network.file_name);
    let err = |source| NetError::Write { path: path.clone(), source };
    fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(".{}.tmp", config.default_network.file_name));
    let mut file = fs::File::create(&tmp).map_err(err)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(err)?;
    fs::rename(&tmp, &path).map_err(err)?;
    tracing::info!(file = %path.display(), "wrote the default CNI network");
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::conf::NetworkList;

    #[test]
    fn dual_stack_default() {
        let text = render_default_network(&DefaultNetworkConfig::default(), true).unwrap();
        let list = NetworkList::from_bytes(text.as_bytes()).unwrap();
        assert_eq!(list.name, "crius");
        assert_eq!(list.plugin_types().collect::<Vec<_>>(), ["bridge", "loopback"]);
        let bridge = &list.plugins[0].raw;
        assert_eq!(bridge["bridge"], "crius0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/16");
        assert_eq!(bridge["ipam"]["ranges"][1][0]["subnet"], "fd8e:8a11:88::/64");
        assert_eq!(bridge["ipam"]["routes"][1]["dst"], "::/0");
        assert!(bridge["ipam"].get("dataDir").is_none());
    }

    #[test]
    fn ipv6_left_out_where_the_host_has_none() {
        let text = render_default_network(&DefaultNetworkConfig::default(), false).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["plugins"][0]["ipam"]["ranges"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn bad_subnets_are_refused() {
        for subnets in [vec!["10.0.0.0"], vec!["x/16"], vec!["10.0.0.0/31"], vec!["10.0.0.0/16", "10.1.0.0/16"], vec![]]
        {
            let cfg =
                DefaultNetworkConfig { subnets: subnets.iter().map(|s| s.to_string()).collect(), ..Default::default() };
            assert!(render_default_network(&cfg, true).is_err(), "{subnets:?}");
        }
    }

    #[test]
    fn written_once_and_only_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let config = NetworkConfig { conf_dirs: vec![dir.path().join("net.d")], ..Default::default() };
        let path = ensure_default_network(&config).unwrap().unwrap();
        assert!(path.ends_with("net.d/10-crius-bridge.conflist"));
        assert_eq!(ensure_default_network(&config).unwrap(), None);
    }
}
