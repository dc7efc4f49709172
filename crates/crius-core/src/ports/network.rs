//! Pod networking ports: the pod's network (CNI) and its host ports (crius's own hostport
//! manager, or nothing when the CNI chain's portmap plugin does it).
//!
//! Both are blocking and synchronous, like every port: the domain runs on blocking threads.
//! Order the domain keeps (see crius-net's README for the wiring):
//!   RunPodSandbox: `PodNetwork::setup` (after the netns is pinned), then `HostPorts::add` with
//!   the IPs setup returned. Each undo is pushed before its step, as everywhere in run.rs.
//!   Stop/Remove: `HostPorts::remove`, `PodNetwork::teardown`, then the netns goes (monitor stop).
//!   Start-up: `HostPorts::resync` with every pod whose network is still up.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sandbox::model::PortMapping;

/// What the network of one pod is set up (or torn down) from. Teardown must be given the same
/// pod identity as setup; the adapter keeps what else it needs (the config and result it used).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRequest {
    pub pod_id: String,
    /// The pod's metadata, passed to plugins as K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_UID.
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The pinned network namespace. May be empty on teardown when the namespace is already
    /// gone (the CNI spec lets DEL run without one, to release IPs and host-side state).
    pub netns_path: String,
    /// The pod's annotations: kubernetes.io/ingress-bandwidth and egress-bandwidth are read.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The pod's port mappings, passed to CNI only when hostports are left to the portmap
    /// plugin (`hostport_manager = "cni"`); crius's own manager gets them through `HostPorts`.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// The pod's cgroup parent, passed to plugins that ask for the cgroupPath capability.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup_parent: String,
}

/// One interface a network plugin reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path for an interface inside the pod; empty for a host-side interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// The pod's network as set up. Keep it in the pod record: the IPs answer PodSandboxStatus and
/// are needed again by `HostPorts::resync` after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Every IP of the pod's interfaces, the primary first (CRI: `network.ip`, then
    /// `additional_ips`).
    pub ips: Vec<IpAddr>,
    pub interfaces: Vec<NetworkInterface>,
    /// The name of the CNI network the pod joined.
    pub network_name: String,
    /// The final CNI result, as the plugins returned it (for verbose status).
    pub cni_result_json: String,
}

impl NetworkStatus {
    pub fn primary_ip(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }
}

/// The NetworkReady condition of CRI's Status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkReadiness {
    pub ready: bool,
    /// A CamelCase reason when not ready (NetworkPluginNotReady).
    pub reason: String,
    pub message: String,
}

/// A pod's network: CNI ADD/CHECK/DEL against the configured network.
pub trait PodNetwork: Send + Sync {
    /// Joins the pod's network namespace to the network. On failure nothing stays that a
    /// `teardown` would not also remove; callers still push `teardown` as the undo before
    /// calling (it is idempotent). Internal with the plugin's own message and code when a
    /// plugin fails, FailedPrecondition when no network is configured.
    fn setup(&self, request: &NetworkRequest) -> Result<NetworkStatus>;
    /// Whether the pod's network is still as set up (CNI CHECK). Ok when the network's
    /// version or config does not support CHECK.
    fn check(&self, request: &NetworkRequest) -> Result<()>;
    /// Removes the pod from its network with the config and result setup used, even after a
    /// restart. Idempotent: a pod never set up, or already torn down, is success; works with
    /// an empty `netns_path`.
    fn teardown(&self, request: &NetworkRequest) -> Result<()>;
    /// Tears down every network set up for a pod not in `known` (a reboot, or a crash, cut a
    /// creation whose record had not reached the disk yet, while the network's state and its
    /// IP allocation had); returns those pods' ids. Called once at start, after recovery.
    fn teardown_unknown(&self, known: &[String]) -> Result<Vec<String>>;
    /// Whether a usable network config exists (re-read when the config directory changes).
    fn status(&self) -> NetworkReadiness;
}

/// A live pod's host ports, for `HostPorts::resync` at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPortPod {
    pub pod_id: String,
    pub mappings: Vec<PortMapping>,
    pub ips: Vec<IpAddr>,
}

/// What `HostPorts::resync` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPortResyncReport {
    /// Pods whose rules and held sockets are in place again.
    pub restored: Vec<String>,
    /// Pods that were no longer live and whose rules were deleted.
    pub removed: Vec<String>,
    /// Problems that did not stop the resync (one line each, naming the pod and the port).
    pub problems: Vec<String>,
}

/// hostPort -> pod IP:containerPort forwarding, with each host port held by an open socket on
/// the host while the pod exists. Mappings with hostPort <= 0 are not host ports and are
/// skipped.
pub trait HostPorts: Send + Sync {
    /// Forwards and holds every host port of the pod. All or nothing: on failure nothing of
    /// this call remains. InvalidArgument for a bad mapping (port out of range, unparsable or
    /// non-local hostIP, a hostIP whose family the pod has no IP of); FailedPrecondition when
    /// a port is already held or in use on the host, naming the port, protocol and address.
    /// Calling it again for the same pod replaces the pod's previous rules.
    fn add(&self, pod_id: &str, mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<()>;
    /// Deletes the pod's rules and closes its sockets. Needs no IP; idempotent.
    fn remove(&self, pod_id: &str, mappings: &[PortMapping]) -> Result<()>;
    /// At start-up: restores the rules and sockets of `live` pods, deletes the rules of every
    /// other pod.
    fn resync(&self, live: &[HostPortPod]) -> Result<HostPortResyncReport>;
}
