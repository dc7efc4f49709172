//! What the stats service reads from the host: cgroup counters, a network namespace's interface
//! counters, and the (cached) disk usage of containers' writable layers.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sandbox::model::ProcRef;

/// Cumulative cpu time of a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSample {
    pub usage_ns: u64,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_ns: Option<u64>,
}

/// Memory counters of a cgroup (v1 and v2 already normalised by the adapter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    pub usage_bytes: u64,
    /// None: unlimited.
    pub limit_bytes: Option<u64>,
    pub inactive_file_bytes: u64,
    pub rss_bytes: u64,
    pub cache_bytes: u64,
    pub mapped_file_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    pub fail_count: Option<u64>,
    pub max_usage_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapSample {
    pub usage_bytes: u64,
    pub limit_bytes: Option<u64>,
}

/// One reading of a cgroup; each part is None where the host does not offer it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupSample {
    pub cpu: Option<CpuSample>,
    pub memory: Option<MemorySample>,
    pub swap: Option<SwapSample>,
    pub pids: Option<u64>,
}

/// Counters of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSample {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// The disk usage of a writable layer when it was last measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerUsage {
    pub bytes: u64,
    pub inodes: u64,
    /// When it was measured (ns since the epoch).
    pub timestamp_ns: i64,
    /// The filesystem the layers are on (its mount point, or the directory holding them).
    pub mountpoint: String,
}

/// The host side of stats. Reads are cheap (a few small files per cgroup); the writable layers'
/// usage is measured in the background and only looked up here, so a List never walks a tree.
pub trait StatsSource: Send + Sync {
    /// The counters of `cgroup`, named as an OCI cgroupsPath: an absolute cgroupfs path
    /// ("/kubepods/podX/ID"), a systemd "slice:prefix:name", or a bare systemd slice
    /// ("kubepods-podX.slice"). `Ok(None)`: there is no such cgroup (not made yet, or gone).
    fn cgroup(&self, cgroup: &str) -> Result<Option<CgroupSample>>;
    /// The interface counters inside the network namespace pinned at `netns_path`. `holder`, a
    /// process known to live in that namespace (the pod init), lets the adapter read them
    /// through /proc/<pid>/net without entering the namespace.
    fn network(&self, netns_path: &str, holder: Option<ProcRef>) -> Result<Vec<InterfaceSample>>;
    /// The last measured usage of the container's writable layer; asking also keeps the
    /// container on the list the background measurer walks. None until first measured.
    fn writable_layer(&self, container_id: &str) -> Option<LayerUsage>;
    /// The containers that still exist, so the measurer drops the others.
    fn retain_layers(&self, live_container_ids: &[String]);
}
