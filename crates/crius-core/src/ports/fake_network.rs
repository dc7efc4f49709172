//! In-memory fakes of the networking ports, sharing the log and the one-shot faults of
//! `ports::fake::Fakes` so that a test sees network steps in order with every other step, and a
//! fault at any of them (`fakes.fail_once("network_setup")`) is injected the same way.
//!
//! Operations: network_setup, network_check, network_teardown, hostports_add, hostports_remove,
//! hostports_resync.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fake::Fakes;
use super::network::{
    HostPortPod, HostPortResyncReport, HostPorts, NetworkInterface, NetworkReadiness, NetworkRequest, NetworkStatus,
    PodNetwork,
};
use crate::error::{Error, Result};
use crate::sandbox::model::{PortMapping, Protocol};

/// What the fake network holds.
#[derive(Debug, Default)]
pub struct NetState {
    /// Pods joined to the network, by id.
    pub networks: BTreeMap<String, NetworkStatus>,
    /// Pods with host ports, by id: the mappings that are forwarded.
    pub hostports: BTreeMap<String, Vec<PortMapping>>,
    /// Held (protocol, host IP or "", host port), with the pod holding it.
    pub held: BTreeMap<(&'static str, String, i32), String>,
    /// Requests seen by setup, for assertions on what the domain passed.
    pub requests: Vec<NetworkRequest>,
    pub next_ip: u32,
    /// Whether `status()` says the network is ready.
    pub not_ready: bool,
    /// Give pods an IPv6 address too.
    pub dual_stack: bool,
}

#[derive(Clone, Default)]
pub struct FakeNetwork {
    pub fakes: Fakes,
    pub state: Arc<Mutex<NetState>>,
}

impl FakeNetwork {
    /// A fake network logging into (and taking faults from) `fakes`.
    pub fn new(fakes: &Fakes) -> Self {
        FakeNetwork { fakes: fakes.clone(), state: fakes.net_state.clone() }
    }

    pub fn state(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Nothing of any pod's network exists.
    pub fn is_empty(&self) -> bool {
        let s = self.state();
        s.networks.is_empty() && s.hostports.is_empty() && s.held.is_empty()
    }

    pub fn set_ready(&self, ready: bool) {
        self.state().not_ready = !ready;
    }

    /// Logs the call and fails it if a fault was injected for `name`.
    fn op(&self, name: &'static str, id: &str) -> Result<()> {
        let mut w = self.fakes.world();
        w.log.push(format!("{name} {}", super::fake::short(id)));
        super::fake::injected_fault(&mut w.fail_next, name, id)
    }
}

impl PodNetwork for FakeNetwork {
    fn setup(&self, request: &NetworkRequest) -> Result<NetworkStatus> {
        self.op("network_setup", &request.pod_id)?;
        if request.netns_path.is_empty() {
            return Err(Error::invalid(format!("pod sandbox {}: no network namespace to set up", request.pod_id)));
        }
        let mut s = self.state();
        s.requests.push(request.clone());
        if let Some(existing) = s.networks.get(&request.pod_id) {
            return Ok(existing.clone());
        }
        s.next_ip += 1;
        let n = s.next_ip;
        let mut ips = vec![IpAddr::V4(Ipv4Addr::new(10, 88, (n >> 8) as u8, n as u8))];
        if s.dual_stack {
            ips.push(IpAddr::V6(Ipv6Addr::new(0xfd00, 0x88, 0, 0, 0, 0, 0, n as u16)));
        }
        let status = NetworkStatus {
            ips,
            interfaces: vec![NetworkInterface {
                name: "eth0".into(),
                mac: String::new(),
                sandbox: request.netns_path.clone(),
            }],
            network_name: "fake".into(),
            cni_result_json: "{}".into(),
        };
        s.networks.insert(request.pod_id.clone(), status.clone());
        Ok(status)
    }

    fn check(&self, request: &NetworkRequest) -> Result<()> {
        self.op("network_check", &request.pod_id)?;
        if self.state().networks.contains_key(&request.pod_id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("pod sandbox {} has no network", request.pod_id)))
        }
    }

    fn teardown(&self, request: &NetworkRequest) -> Result<()> {
        self.op("network_teardown", &request.pod_id)?;
        self.state().networks.remove(&request.pod_id);
        Ok(())
    }

    fn teardown_unknown(&self, known: &[String]) -> Result<Vec<String>> {
        self.op("network_teardown_unknown", "")?;
        let mut s = self.state();
        let unknown: Vec<String> = s.networks.keys().filter(|id| !known.contains(id)).cloned().collect();
        for id in &unknown {
            s.networks.remove(id);
        }
        Ok(unknown)
    }

    fn status(&self) -> NetworkReadiness {
        if self.state().not_ready {
            NetworkReadiness {
                ready: false,
                reason: "NetworkPluginNotReady".into(),
                message: "fake network not ready".into(),
            }
        } else {
            NetworkReadiness { ready: true, ..Default::default() }
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn host_ports(mappings: &[PortMapping]) -> impl Iterator<Item = &PortMapping> {
    mappings.iter().filter(|m| m.host_port > 0)
}

impl HostPorts for FakeNetwork {
    fn add(&self, pod_id: &str, mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<()> {
        self.op("hostports_add", pod_id)?;
        let mut s = self.state();
        let mut keys = BTreeSet::new();
        for m in host_ports(mappings) {
            if m.host_port > 65535 || !(1..=65535).contains(&m.container_port) {
                return Err(Error::invalid(format!("port mapping {m:?}: port out of range")));
            }
            if pod_ips.is_empty() {
                return Err(Error::invalid(format!("pod sandbox {pod_id} has no IP to forward host ports to")));
            }
            let key = (protocol_name(m.protocol), m.host_ip.clone(), m.host_port);
            if let Some(holder) = s.held.get(&key).filter(|h| *h != pod_id) {
                return Err(Error::precondition(format!(
                    "host port {}/{} on {:?} is already held by pod sandbox {holder}",
                    m.host_port, key.0, m.host_ip
                )));
            }
            keys.insert(key);
        }
        s.held.retain(|_, holder| holder != pod_id);
        for key in keys {
            s.held.insert(key, pod_id.to_string());
        }
        s.hostports.insert(pod_id.to_string(), host_ports(mappings).cloned().collect());
        Ok(())
    }

    fn remove(&self, pod_id: &str, _mappings: &[PortMapping]) -> Result<()> {
        self.op("hostports_remove", pod_id)?;
        let mut s = self.state();
        s.hostports.remove(pod_id);
        s.held.retain(|_, holder| holder != pod_id);
        Ok(())
    }

    fn resync(&self, live: &[HostPortPod]) -> Result<HostPortResyncReport> {
        self.op("hostports_resync", "")?;
        let mut report = HostPortResyncReport::default();
        let gone: Vec<String> = {
            let s = self.state();
            s.hostports.keys().filter(|id| !live.iter().any(|p| &p.pod_id == *id)).cloned().collect()
        };
        for id in gone {
            let mut s = self.state();
            s.hostports.remove(&id);
            s.held.retain(|_, holder| *holder != id);
            report.removed.push(id);
        }
        for pod in live {
            match self.add(&pod.pod_id, &pod.mappings, &pod.ips) {
                Ok(()) => report.restored.push(pod.pod_id.clone()),
                Err(e) => report.problems.push(format!("pod sandbox {}: {e}", pod.pod_id)),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn request(id: &str) -> NetworkRequest {
        NetworkRequest { pod_id: id.into(), netns_path: format!("/run/netns/{id}"), ..Default::default() }
    }

    fn tcp(host_port: i32, container_port: i32) -> PortMapping {
        PortMapping { protocol: Protocol::Tcp, container_port, host_port, host_ip: String::new() }
    }

    #[test]
    fn setup_teardown_round_trip_with_shared_log() {
        let fakes = Fakes::default();
        let net = FakeNetwork::new(&fakes);
        net.state().dual_stack = true;
        let status = net.setup(&request("pod1")).unwrap();
        assert_eq!(status.ips.len(), 2);
        assert!(status.primary_ip().unwrap().is_ipv4());
        net.check(&request("pod1")).unwrap();
        net.teardown(&request("pod1")).unwrap();
        net.teardown(&request("pod1")).unwrap();
        assert!(net.is_empty());
        assert_eq!(
            fakes.log(),
            ["network_setup pod1", "network_check pod1", "network_teardown pod1", "network_teardown pod1"]
        );
    }

    #[test]
    fn one_shot_faults_come_from_the_shared_fakes() {
        let fakes = Fakes::default();
        let net = FakeNetwork::new(&fakes);
        fakes.fail_once("network_setup");
        assert_eq!(net.setup(&request("p")).unwrap_err().kind(), ErrorKind::Internal);
        assert!(net.setup(&request("p")).is_ok());
    }

    #[test]
    fn hostport_conflicts_and_resync() {
        let net = FakeNetwork::default();
        let ip = [IpAddr::V4(Ipv4Addr::new(10, 88, 0, 2))];
        net.add("a", &[tcp(8080, 80), tcp(0, 81)], &ip).unwrap();
        assert_eq!(net.state().hostports["a"].len(), 1);
        let err = net.add("b", &[tcp(8080, 80)], &ip).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(net.add("b", &[tcp(70000, 80)], &ip).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let report = net.resync(&[HostPortPod { pod_id: "b".into(), mappings: vec![tcp(8080, 80)], ips: ip.to_vec() }]);
        let report = report.unwrap();
        assert_eq!(report.removed, ["a"]);
        assert_eq!(report.restored, ["b"]);
        net.remove("b", &[]).unwrap();
        assert!(net.is_empty());
    }
}
