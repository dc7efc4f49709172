//! CNI results (0.3.x, 0.4.0 and 1.x shapes) and the pod IPs read from them.

use std::net::IpAddr;

use crius_core::ports::network::NetworkInterface;
use serde::Deserialize;
use serde_json::Value;

use crate::config::IpPreference;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResult {
    #[serde(default)]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    ips: Vec<RawIp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct RawInterface {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    sandbox: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct RawIp {
    address: String,
    #[serde(default)]
    gateway: Option<String>,
    /// Index into `interfaces`. 0.3/0.4 also carry "version": "4"/"6", which the address
    /// already says.
    #[serde(default)]
    interface: Option<usize>,
}

/// One address of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub cni_version: String,
    pub interfaces: Vec<NetworkInterface>,
    pub ips: Vec<IpConfig>,
}

impl CniResult {
    pub fn parse(value: &Value) -> Result<CniResult, String> {
        let raw: RawResult = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        let interfaces = raw
            .interfaces
            .into_iter()
            .map(|i| NetworkInterface { name: i.name, mac: i.mac, sandbox: i.sandbox })
            .collect::<Vec<_>>();
        let mut ips = Vec::with_capacity(raw.ips.len());
        for ip in raw.ips {
            let (addr, prefix) =
                ip.address.split_once('/').ok_or_else(|| format!("address {:?} has no prefix length", ip.address))?;
            let address: IpAddr = addr.parse().map_err(|_| format!("address {:?} is not an IP", ip.address))?;
            let prefix_len: u8 =
                prefix.parse().map_err(|_| format!("address {:?} has a bad prefix length", ip.address))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            if prefix_len > max {
                return Err(format!("address {:?} has a bad prefix length", ip.address));
            }
            let gateway = match ip.gateway.as_deref() {
                None | Some("") => None,
                Some(g) => Some(g.parse().map_err(|_| format!("gateway {g:?} is not an IP"))?),
            };
            if let Some(i) = ip.interface
                && i >= interfaces.len()
            {
                return Err(format!(
                    "address {:?} names interface {i}, and there are {}",
                    ip.address,
                    interfaces.len()
                ));
            }
            ips.push(IpConfig { address, prefix_len, gateway, interface: ip.interface });
        }
        Ok(CniResult { cni_version: raw.cni_version, interfaces, ips })
    }

    /// The pod's IPs: those on an interface inside the pod (or on no named interface), in the
    /// result's order with the preferred family's first one moved to the front, without
    /// duplicates.
    pub fn pod_ips(&self, preference: IpPreference) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in &self.ips {
            let in_pod = match ip.interface {
                Some(i) => self.interfaces.get(i).is_some_and(|iface| !iface.sandbox.is_empty()),
                None => true,
            };
            if in_pod && !ips.contains(&ip.address) {
                ips.push(ip.address);
            }
        }
        let primary = match preference {
            IpPreference::Ipv4 => ips.iter().position(IpAddr::is_ipv4),
            IpPreference::Ipv6 => ips.iter().position(IpAddr::is_ipv6),
            IpPreference::Cni => None,
        };
        if let Some(i) = primary {
            let ip = ips.remove(i);
            ips.insert(0, ip);
        }
        ips
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v1_dual_stack() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/p"}
            ],
            "ips": [
                {"address": "fd8e::5/64", "gateway": "fd8e::1", "interface": 2},
                {"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2},
                {"address": "10.88.0.1/16", "interface": 0}
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        })
    }

    #[test]
    fn v1_result_dual_stack_ipv4_first() {
        let r = CniResult::parse(&v1_dual_stack()).unwrap();
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.interfaces[2].sandbox, "/run/netns/p");
        assert_eq!(r.ips[1].gateway, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(r.ips[1].prefix_len, 16);
        let ips: Vec<String> = r.pod_ips(IpPreference::Ipv4).iter().map(|i| i.to_string()).collect();
        // The bridge's own address is host-side and left out.
        assert_eq!(ips, ["10.88.0.5", "fd8e::5"]);
        let ips: Vec<String> = r.pod_ips(IpPreference::Cni).iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["fd8e::5", "10.88.0.5"]);
        let ips: Vec<String> = r.pod_ips(IpPreference::Ipv6).iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["fd8e::5", "10.88.0.5"]);
    }

    #[test]
    fn v04_result_with_version_fields_and_no_interfaces() {
        let value = json!({
            "cniVersion": "0.4.0",
            "ips": [
                {"version": "4", "address": "10.1.2.3/24", "gateway": "10.1.2.1"},
                {"version": "6", "address": "fd00:1::3/64"}
            ],
            "dns": {}
        });
        let r = CniResult::parse(&value).unwrap();
        let ips: Vec<String> = r.pod_ips(IpPreference::Ipv6).iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["fd00:1::3", "10.1.2.3"]);
    }

    #[test]
    fn v03_single_stack_with_interface_index() {
        let value = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "eth0", "sandbox": "/proc/1/ns/net"}],
            "ips": [{"version": "4", "interface": 0, "address": "192.168.9.9/24"}]
        });
        let r = CniResult::parse(&value).unwrap();
        assert_eq!(r.pod_ips(IpPreference::Ipv4), vec!["192.168.9.9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_results_are_refused() {
        for bad in [
            json!({"ips": [{"address": "10.0.0.1"}]}),
            json!({"ips": [{"address": "nope/24"}]}),
            json!({"ips": [{"address": "10.0.0.1/33"}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "interface": 3}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "gateway": "x"}]}),
            json!("text"),
        ] {
            assert!(CniResult::parse(&bad).is_err(), "{bad}");
        }
        assert!(CniResult::parse(&json!({})).unwrap().pod_ips(IpPreference::Ipv4).is_empty());
    }
}
