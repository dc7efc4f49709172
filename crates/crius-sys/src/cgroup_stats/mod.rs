//! Resource usage readers for stats: a cgroup's cpu, memory, swap and pids counters (v1 and v2,
//! normalised into one [`CgroupStats`]), a network namespace's interface counters, and the disk
//! usage of a directory tree. Everything takes paths (a [`CgroupLayout`](crate::cgroups::CgroupLayout)
//! built from a root, a netns pin, a directory) so tests run on fixture trees.
//!
//! A counter file that is missing leaves its field `None`: kernels and configurations differ
//! (no swap accounting, no pids controller), and a stats reader must report what it has.

mod disk_usage;
mod files;
mod netdev;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

pub use disk_usage::{DiskUsage, disk_usage};
pub use netdev::{InterfaceCounters, parse_net_dev, read_net_dev_in_netns};

use crate::cgroups::{CgroupLayout, CgroupMode};
use crate::error::Result;

/// Values at or above this are "no limit": cgroup v1 reports an unlimited memory limit as the
/// largest page-aligned i64 (9223372036854771712), which no real limit approaches.
pub const UNLIMITED_THRESHOLD: u64 = 1 << 60;

/// Cumulative cpu time of a cgroup, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_ns: u64,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
    /// Periods in which the cgroup was throttled by its quota, and for how long.
    pub throttled_periods: Option<u64>,
    pub throttled_ns: Option<u64>,
}

/// Memory counters of a cgroup, normalised across v1 (`total_*` of memory.stat, which include
/// descendants) and v2 (memory.stat is already hierarchical).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// memory.usage_in_bytes (v1) or memory.current (v2).
    pub usage_bytes: u64,
    /// None: unlimited.
    pub limit_bytes: Option<u64>,
    /// Page cache the kernel may reclaim first; working set = usage - inactive_file.
    pub inactive_file_bytes: u64,
    /// Anonymous memory and swap cache (v1 total_rss, v2 anon).
    pub rss_bytes: u64,
    /// Page cache (v1 total_cache, v2 file).
    pub cache_bytes: u64,
    pub mapped_file_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// Times the limit was hit (v1 memory.failcnt; v2 the "max" count of memory.events).
    pub fail_count: Option<u64>,
    pub max_usage_bytes: Option<u64>,
}

impl MemoryStats {
    /// What the kubelet evicts on: usage minus the inactive page cache (as cAdvisor).
    pub fn working_set_bytes(&self) -> u64 {
        self.usage_bytes.saturating_sub(self.inactive_file_bytes)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapStats {
    pub usage_bytes: u64,
    /// None: unlimited.
    pub limit_bytes: Option<u64>,
}

/// What could be read of one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub swap: Option<SwapStats>,
    /// Processes (tasks) in the cgroup and its descendants.
    pub pids: Option<u64>,
}

/// Reads the stats of `cgroup` (a path like "/kubepods/podX/ID", relative to each hierarchy's
/// root). `Ok(None)`: the cgroup exists in no hierarchy (not created yet, or already removed).
pub fn read_cgroup_stats(layout: &CgroupLayout, cgroup: &str) -> Result<Option<CgroupStats>> {
    match layout.mode() {
        CgroupMode::V2 => {
            let Some(mount) = layout.unified.as_deref() else { return Ok(None) };
            v2::read(&files::join(mount, cgroup))
        }
        // Hybrid: the controllers are on the v1 hierarchies; the cgroup2 mount has none of
        // the ones stats need.
        CgroupMode::V1 | CgroupMode::Hybrid => v1::read(layout, cgroup),
    }
}
