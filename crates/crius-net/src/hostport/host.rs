//! Facts of the host the rules depend on: which interface leads to a pod, and letting
//! 127.0.0.1 sources be routed out of it.

use std::net::IpAddr;
use std::process::Command;

use serde_json::Value;

/// The interface the node routes `ip` through (the pod's bridge or host veth), from
/// `ip -j route get`. None when the address is local or the lookup fails: the rules then do
/// without the interface match.
pub fn pod_facing_interface(ip: IpAddr) -> Option<String> {
    let out = Command::new("ip").args(["-j", "route", "get", &ip.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_route_dev(&out.stdout)
}

pub fn parse_route_dev(json: &[u8]) -> Option<String> {
    let routes: Value = serde_json::from_slice(json).ok()?;
    let dev = routes.get(0)?.get("dev")?.as_str()?;
    let valid = !dev.is_empty() && dev != "lo" && dev.len() <= 15 && !dev.contains(['"', '/', ' ', '\\']);
    valid.then(|| dev.to_string())
}

/// net.ipv4.conf.<iface>.route_localnet=1: packets from 127.0.0.1, DNATed to a pod, may leave
/// through `iface` (the masquerade rule then gives them a routable source). Best effort: a
/// failure only breaks hostports through 127.0.0.1, and is logged.
pub fn enable_route_localnet(iface: &str) {
    let path = format!("/proc/sys/net/ipv4/conf/{iface}/route_localnet");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return;
    }
    if let Err(e) = std::fs::write(&path, "1") {
        tracing::warn!(iface, error = %e, "cannot set route_localnet: hostports will not answer on 127.0.0.1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_dev() {
        let json = br#"[{"dst":"10.88.0.5","dev":"cni0","prefsrc":"10.88.0.1","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(parse_route_dev(json).as_deref(), Some("cni0"));
        assert_eq!(parse_route_dev(br#"[{"dst":"127.0.0.1","dev":"lo"}]"#), None);
        assert_eq!(parse_route_dev(b"[]"), None);
        assert_eq!(parse_route_dev(br#"[{"dev":"a\"b"}]"#), None);
    }
}
