//! What a plugin is given besides its config: CNI_ARGS, and the runtimeConfig built from the
//! capabilities it declares (portMappings, bandwidth, ...), assembled into its stdin.

use std::collections::BTreeMap;

use crius_core::ports::network::NetworkRequest;
use crius_core::sandbox::model::{PortMapping, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::conf::{NetworkList, PluginConf};
use crate::error::NetError;

pub const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
pub const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";

/// Burst given with a rate: what containerd and CRI-O pass, i.e. no burst limit of our own.
const UNLIMITED_BURST: u64 = u32::MAX as u64;

/// CNI_ARGS for a pod, as the kubelet's runtimes set it. IgnoreUnknown keeps plugins that do not
/// know the K8S_ keys from refusing them.
pub fn cni_args(request: &NetworkRequest) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        request.namespace, request.name, request.pod_id, request.uid
    )
}

/// One entry of the portMappings capability (CNI CONVENTIONS.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMappingArg {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The bandwidth capability: rates in bits per second, bursts in bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthArg {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_burst: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_burst: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Every capability argument crius can give, computed once per pod and cached with the result
/// so DEL gets the same ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityArgs {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMappingArg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthArg>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup_path: String,
}

impl CapabilityArgs {
    /// From the pod; `with_port_mappings` when the CNI chain does the host ports.
    pub fn for_pod(request: &NetworkRequest, with_port_mappings: bool) -> Result<Self, NetError> {
        let port_mappings = if with_port_mappings { port_mapping_args(&request.port_mappings) } else { Vec::new() };
        Ok(CapabilityArgs {
            port_mappings,
            bandwidth: bandwidth(&request.annotations)?,
            pod_annotations: request.annotations.clone(),
            cgroup_path: request.cgroup_parent.clone(),
        })
    }

    /// The runtimeConfig for a plugin: only the capabilities it declares, and only those with a
    /// value (an empty portMappings list is still passed, so portmap sees "no ports").
    pub fn runtime_config(&self, plugin: &PluginConf) -> Map<String, Value> {
        let mut rc = Map::new();
        for cap in &plugin.capabilities {
            let value = match cap.as_str() {
                "portMappings" => Some(json!(self.port_mappings)),
                "bandwidth" => self.bandwidth.map(|b| json!(b)),
                "io.kubernetes.cri.pod-annotations" => Some(json!(self.pod_annotations)),
                "cgroupPath" if !self.cgroup_path.is_empty() => Some(json!(self.cgroup_path)),
                _ => None,
            };
            if let Some(v) = value {
                rc.insert(cap.clone(), v);
            }
        }
        rc
    }
}

/// Mappings with hostPort <= 0 are not host ports.
pub fn port_mapping_args(mappings: &[PortMapping]) -> Vec<PortMappingArg> {
    mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| PortMappingArg {
            host_port: m.host_port,
            container_port: m.container_port,
            protocol: protocol_name(m.protocol).to_string(),
            host_ip: m.host_ip.clone(),
        })
        .collect()
}

pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// The bandwidth annotations, as the kubelet reads them: Kubernetes quantities in bits per
/// second, between 1k and 1P.
pub fn bandwidth(annotations: &BTreeMap<String, String>) -> Result<Option<BandwidthArg>, NetError> {
    let read = |key: &str| -> Result<Option<u64>, NetError> {
        let Some(text) = annotations.get(key) else {
            return Ok(None);
        };
        let bad = |reason: String| NetError::InvalidRequest { what: format!("annotation {key}={text:?}"), reason };
        let bits = parse_quantity(text).map_err(bad)?;
        if bits < 1_000 {
            return Err(bad("below the minimum of 1k (bits per second)".into()));
        }
        if bits > 1_000_000_000_000_000 {
            return Err(bad("above the maximum of 1P (bits per second)".into()));
        }
        Ok(Some(bits))
    };
    let ingress = read(INGRESS_BANDWIDTH)?;
    let egress = read(EGRESS_BANDWIDTH)?;
    if ingress.is_none() && egress.is_none() {
        return Ok(None);
    }
    let mut bw = BandwidthArg::default();
    if let Some(rate) = ingress {
        bw.ingress_rate = rate;
        bw.ingress_burst = UNLIMITED_BURST;
    }
    if let Some(rate) = egress {
        bw.egress_rate = rate;
        bw.egress_burst = UNLIMITED_BURST;
    }
    Ok(Some(bw))
}

/// A Kubernetes resource quantity ("10M", "1.5Gi", "100k", "2e6") as an integer, rounded up as
/// Quantity.Value() does.
pub fn parse_quantity(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err("not a quantity (e.g. 10M, 1Gi)".into());
    }
    let value: f64 = number.parse().map_err(|_| "not a quantity (e.g. 10M, 1Gi)".to_string())?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| format!("bad exponent {e:?}"))?;
            10f64.powi(exp)
        }
        other => return Err(format!("unknown suffix {other:?} (use k, M, G, T, P, E or Ki, Mi, Gi, ...)")),
    };
    let total = (value * multiplier).ceil();
    if !total.is_finite() || total < 0.0 || total > u64::MAX as f64 {
        return Err("out of range".into());
    }
    Ok(total as u64)
}

/// A plugin's stdin: its config with the network's name and version, its runtimeConfig, and the
/// previous result of the chain (ADD) or the cached result (CHECK, DEL).
pub fn plugin_stdin(
    list: &NetworkList,
    plugin: &PluginConf,
    caps: &CapabilityArgs,
    prev_result: Option<&Value>,
) -> Result<Vec<u8>, NetError> {
    let mut conf = plugin.raw.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.version_str.clone()));
    // The declared capabilities are for the runtime; the plugin gets their values instead.
    let rc = caps.runtime_config(plugin);
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    match prev_result {
        Some(prev) => {
            conf.insert("prevResult".into(), prev.clone());
        }
        None => {
            conf.remove("prevResult");
        }
    }
    serde_json::to_vec(&Value::Object(conf)).map_err(|e| NetError::InvalidRequest {
        what: format!("config of plugin {}", plugin.plugin_type),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request() -> NetworkRequest {
        NetworkRequest {
            pod_id: "abc123".into(),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u-1".into(),
            netns_path: "/run/netns/x".into(),
            annotations: BTreeMap::from([
                (INGRESS_BANDWIDTH.to_string(), "10M".to_string()),
                ("other".to_string(), "x".to_string()),
            ]),
            port_mappings: vec![
                PortMapping { protocol: Protocol::Tcp, container_port: 80, host_port: 8080, host_ip: String::new() },
                PortMapping { protocol: Protocol::Udp, container_port: 53, host_port: 0, host_ip: String::new() },
                PortMapping {
                    protocol: Protocol::Sctp,
                    container_port: 9,
                    host_port: 9000,
                    host_ip: "127.0.0.1".into(),
                },
            ],
            cgroup_parent: String::new(),
        }
    }

    #[test]
    fn cni_args_carry_the_pod_identity() {
        assert_eq!(
            cni_args(&request()),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1"
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10M"), Ok(10_000_000));
        assert_eq!(parse_quantity("1.5k"), Ok(1_500));
        assert_eq!(parse_quantity("1Ki"), Ok(1024));
        assert_eq!(parse_quantity("2Mi"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_quantity("2e3"), Ok(2_000));
        assert_eq!(parse_quantity("1500m"), Ok(2));
        assert_eq!(parse_quantity("12345"), Ok(12345));
        assert!(parse_quantity("10X").is_err());
        assert!(parse_quantity("").is_err());
        assert!(parse_quantity("M").is_err());
    }

    #[test]
    fn bandwidth_from_annotations_with_limits() {
        let bw = bandwidth(&request().annotations).unwrap().unwrap();
        assert_eq!(bw, BandwidthArg { ingress_rate: 10_000_000, ingress_burst: u32::MAX as u64, ..Default::default() });
        assert_eq!(bandwidth(&BTreeMap::new()).unwrap(), None);
        for bad in ["100", "2P", "lots"] {
            let ann = BTreeMap::from([(EGRESS_BANDWIDTH.to_string(), bad.to_string())]);
            let err = bandwidth(&ann).unwrap_err().to_string();
            assert!(err.contains(EGRESS_BANDWIDTH), "{err}");
        }
    }

    #[test]
    fn runtime_config_has_only_declared_capabilities() {
        let caps = CapabilityArgs::for_pod(&request(), true).unwrap();
        let plugin = |caps: &[&str]| PluginConf {
            plugin_type: "p".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            raw: Map::new(),
        };
        assert!(caps.runtime_config(&plugin(&[])).is_empty());
        let rc = caps.runtime_config(&plugin(&["portMappings", "bandwidth", "ips"]));
        assert_eq!(
            Value::Object(rc),
            json!({
                "portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": 9000, "containerPort": 9, "protocol": "sctp", "hostIP": "127.0.0.1"}
                ],
                "bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 4_294_967_295u64}
            })
        );
        // Hostports left to crius: portmap (if present) is told there are none.
        let without = CapabilityArgs::for_pod(&request(), false).unwrap();
        assert_eq!(Value::Object(without.runtime_config(&plugin(&["portMappings"]))), json!({"portMappings": []}));
        let annotations = caps.runtime_config(&plugin(&["io.kubernetes.cri.pod-annotations"]));
        assert_eq!(annotations["io.kubernetes.cri.pod-annotations"]["other"], "x");
    }

    #[test]
    fn stdin_injects_name_version_runtime_config_and_prev_result() {
        let list = NetworkList::parse(json!({
            "cniVersion": "0.4.0", "name": "net",
            "plugins": [{"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]
        }))
        .unwrap();
        let caps = CapabilityArgs::for_pod(&request(), true).unwrap();
        let prev = json!({"cniVersion": "0.4.0", "ips": []});
        let stdin: Value =
            serde_json::from_slice(&plugin_stdin(&list, &list.plugins[0], &caps, Some(&prev)).unwrap()).unwrap();
        assert_eq!(stdin["name"], "net");
        assert_eq!(stdin["cniVersion"], "0.4.0");
        assert_eq!(stdin["type"], "portmap");
        assert_eq!(stdin["snat"], true);
        assert_eq!(stdin["prevResult"], prev);
        assert_eq!(stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        let first: Value =
            serde_json::from_slice(&plugin_stdin(&list, &list.plugins[0], &caps, None).unwrap()).unwrap();
        assert!(first.get("prevResult").is_none());
    }
}
