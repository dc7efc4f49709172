//! Pod sandbox types: the config as crius understands it (converted from CRI at the edge), and the
//! record that is persisted for each pod.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMetadata {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
}

impl PodMetadata {
    /// The reserved name of a pod, as containerd builds it: two pods with the same metadata
    /// (including the attempt) are the same pod.
    pub fn sandbox_name(&self) -> String {
        format!("{}_{}_{}_{}", self.name, self.namespace, self.uid, self.attempt)
    }
}

/// How a pod uses one kind of namespace (CRI's NamespaceMode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// One namespace for the whole pod (the CRI default, the enum's zero value).
    #[default]
    Pod,
    Container,
    Node,
    Target,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceOptions {
    pub network: NamespaceMode,
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_id: String,
}

impl NamespaceOptions {
    pub fn host_network(&self) -> bool {
        self.network == NamespaceMode::Node
    }
    pub fn host_ipc(&self) -> bool {
        self.ipc == NamespaceMode::Node
    }
    pub fn host_pid(&self) -> bool {
        self.pid == NamespaceMode::Node
    }
    /// Which namespaces the pod init is created in.
    pub fn new_namespaces(&self) -> NewNamespaces {
        NewNamespaces {
            net: !self.host_network(),
            ipc: !self.host_ipc(),
            uts: !self.host_network(),
            pid: self.pid == NamespaceMode::Pod,
        }
    }
}

/// The namespaces crius creates (and pins) for a pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNamespaces {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub pid: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub container_port: i32,
    pub host_port: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl DnsConfig {
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.searches.is_empty() && self.options.is_empty()
    }
}

/// A pod's configuration: what RunPodSandbox asked for, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodConfig {
    pub metadata: PodMetadata,
    pub hostname: String,
    pub log_directory: String,
    pub dns: Option<DnsConfig>,
    pub port_mappings: Vec<PortMapping>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub cgroup_parent: String,
    pub sysctls: BTreeMap<String, String>,
    pub namespaces: NamespaceOptions,
    pub runtime_handler: String,
    pub privileged: bool,
    /// The pod's SELinux options: what its containers' labels start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<crate::container::model::SelinuxOptions>,
}

/// A process crius started, identified by pid and start time so that a reused pid is never
/// mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_time: u64,
}

/// Paths where a pod's namespaces are pinned (absent: the pod uses the host's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePaths {
    pub net: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    pub pid: Option<String>,
    /// The network namespace's second pin, for `ip netns` (`<netns_dir>/crius-<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_alias: Option<String>,
}

/// What has been made for a pod so far. Written before each resource is made, so that a crash at
/// any point leaves enough on disk to undo it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodResources {
    pub monitor: Option<ProcRef>,
    pub init: Option<ProcRef>,
    pub namespaces: NamespacePaths,
    /// The pod init's cgroup, relative to each hierarchy's root.
    pub cgroup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodState {
    /// RunPodSandbox is under way (or was, when crius crashed): recovery undoes it.
    Creating,
    Ready,
    /// Stopped by StopPodSandbox: its processes and namespaces are gone.
    Stopped,
}

/// One step of a pod's or a container's start, for the start timeline in verbose status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: String,
    /// Offset from the start of the call that made the object (RunPodSandbox, CreateContainer).
    pub start_us: u64,
    pub duration_us: u64,
}

/// The persisted record of one pod (pods/<id>/state.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// Bumped when the record's shape changes incompatibly.
    pub version: u32,
    pub id: String,
    pub config: PodConfig,
    pub created_at_ns: i64,
    pub state: PodState,
    pub resources: PodResources,
    #[serde(default)]
    pub timeline: Vec<StepTiming>,
    /// The pod's network as CNI set it up (None: host network, or not set up yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::ports::network::NetworkStatus>,
    /// A StopPodSandbox has begun tearing the pod down. Recorded before its first step, so a
    /// daemon killed mid-stop has the stop finished by recovery, which also must not restore the
    /// pod's host ports onto an IP that CNI DEL may already have released.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopping: bool,
    /// The SELinux MCS level the pod's containers share (given, or picked unique on the node);
    /// None without SELinux. Held again at start-up so no new pod gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_level: Option<String>,
}

pub const POD_RECORD_VERSION: u32 = 1;

impl PodRecord {
    pub fn name(&self) -> String {
        self.config.metadata.sandbox_name()
    }
}
