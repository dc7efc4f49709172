//! What stats report: CRI's ContainerStats and PodSandboxStats in domain terms.

use std::collections::BTreeMap;

use crate::container::model::ContainerMetadata;
use crate::ports::stats::{CgroupSample, InterfaceSample};
use crate::sandbox::model::PodMetadata;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub timestamp_ns: i64,
    /// Cumulative cpu time, all cores.
    pub usage_core_ns: u64,
    /// Average use over the window since the previous sample, in nano-cores (1e9 = one core);
    /// None on the first sample or after the counter went backwards.
    pub usage_nano_cores: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub timestamp_ns: i64,
    pub working_set_bytes: u64,
    /// limit - working set; None without a limit.
    pub available_bytes: Option<u64>,
    pub usage_bytes: u64,
    pub rss_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwapUsage {
    pub timestamp_ns: i64,
    pub usage_bytes: u64,
    /// limit - usage; None without a limit.
    pub available_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub timestamp_ns: i64,
    pub mountpoint: String,
    pub used_bytes: u64,
    pub inodes_used: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkUsage {
    pub timestamp_ns: i64,
    /// eth0, the interface CNI gives a pod (as the kubelet assumes); None when there is none.
    pub default_interface: Option<InterfaceSample>,
    /// Every other interface except loopback.
    pub interfaces: Vec<InterfaceSample>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    pub timestamp_ns: i64,
    pub process_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAttributes {
    pub id: String,
    pub pod_id: String,
    pub metadata: ContainerMetadata,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The image as the container was created with it.
    pub image: String,
    /// The full reserved name (name_pod_namespace_uid_attempt).
    pub full_name: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub started_at_ns: i64,
}

/// One container's usage. Each part is None when it cannot be read (a created container's
/// cgroup may hold nothing yet; an exited one's is gone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStats {
    pub attributes: ContainerAttributes,
    pub cpu: Option<CpuUsage>,
    pub memory: Option<MemoryUsage>,
    pub swap: Option<SwapUsage>,
    pub writable_layer: Option<FsUsage>,
    /// The raw reading, for the cAdvisor-style metrics.
    pub sample: Option<CgroupSample>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodAttributes {
    pub id: String,
    pub metadata: PodMetadata,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodStats {
    pub attributes: PodAttributes,
    pub cpu: Option<CpuUsage>,
    pub memory: Option<MemoryUsage>,
    pub network: Option<NetworkUsage>,
    pub process: Option<ProcessUsage>,
    pub containers: Vec<ContainerStats>,
    pub sample: Option<CgroupSample>,
}
