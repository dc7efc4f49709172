//! cgroup v1: each controller in its own hierarchy (cpuacct, memory, pids).

use std::path::PathBuf;

use super::files::{self, join, limit, read_flat_keyed, read_u64};
use super::{CgroupStats, CpuStats, MemoryStats, SwapStats};
use crate::cgroups::CgroupLayout;
use crate::error::Result;

/// USER_HZ: the unit of cpuacct.stat. 100 on every Linux architecture crius runs on.
const USER_HZ: u64 = 100;

fn dir(layout: &CgroupLayout, controller: &str, cgroup: &str) -> Option<PathBuf> {
    layout.v1_hierarchy(controller).map(|h| join(&h.mount_point, cgroup)).filter(|d| d.is_dir())
}

pub(super) fn read(layout: &CgroupLayout, cgroup: &str) -> Result<Option<CgroupStats>> {
    let cpu_dir = dir(layout, "cpuacct", cgroup);
    let memory_dir = dir(layout, "memory", cgroup);
    let pids_dir = dir(layout, "pids", cgroup);
    if cpu_dir.is_none() && memory_dir.is_none() && pids_dir.is_none() {
        return Ok(None);
    }
    let mut stats = CgroupStats::default();
    if let Some(d) = &cpu_dir {
        stats.cpu = read_cpu(d, dir(layout, "cpu", cgroup))?;
    }
    if let Some(d) = &memory_dir {
        let (memory, swap) = read_memory(d)?;
        stats.memory = memory;
        stats.swap = swap;
    }
    stats.pids = match &pids_dir {
        Some(d) => read_u64(&d.join("pids.current"))?,
        None => match memory_dir.as_ref().or(cpu_dir.as_ref()) {
            Some(d) => files::count_procs_recursive(d)?,
            None => None,
        },
    };
    Ok(Some(stats))
}

fn read_cpu(dir: &std::path::Path, cpu_dir: Option<PathBuf>) -> Result<Option<CpuStats>> {
    let Some(usage_ns) = read_u64(&dir.join("cpuacct.usage"))? else { return Ok(None) };
    let mut cpu = CpuStats { usage_ns, ..Default::default() };
    // cpuacct.usage_user/_sys are in ns but only on newer kernels; cpuacct.stat (ticks) always.
    cpu.user_ns = read_u64(&dir.join("cpuacct.usage_user"))?;
    cpu.system_ns = read_u64(&dir.join("cpuacct.usage_sys"))?;
    if (cpu.user_ns.is_none() || cpu.system_ns.is_none())
        && let Some(stat) = read_flat_keyed(&dir.join("cpuacct.stat"))?
    {
        let ticks_ns = 1_000_000_000 / USER_HZ;
        cpu.user_ns = cpu.user_ns.or(stat.get("user").map(|t| t.saturating_mul(ticks_ns)));
        cpu.system_ns = cpu.system_ns.or(stat.get("system").map(|t| t.saturating_mul(ticks_ns)));
    }
    // Throttling is in the cpu controller's cpu.stat (its own hierarchy, or shared with cpuacct).
    if let Some(cpu_dir) = cpu_dir
        && let Some(stat) = read_flat_keyed(&cpu_dir.join("cpu.stat"))?
    {
        cpu.throttled_periods = stat.get("nr_throttled").copied();
        cpu.throttled_ns = stat.get("throttled_time").copied();
    }
    Ok(Some(cpu))
}

fn read_memory(dir: &std::path::Path) -> Result<(Option<MemoryStats>, Option<SwapStats>)> {
    let Some(usage) = read_u64(&dir.join("memory.usage_in_bytes"))? else { return Ok((None, None)) };
    let stat = read_flat_keyed(&dir.join("memory.stat"))?.unwrap_or_default();
    // The total_ values include descendant cgroups, as usage_in_bytes does.
    let get = |key: &str| stat.get(&format!("total_{key}")).or_else(|| stat.get(key)).copied().unwrap_or(0);
    let limit_bytes = limit(read_u64(&dir.join("memory.limit_in_bytes"))?);
    let memory = MemoryStats {
        usage_bytes: usage,
        limit_bytes,
        inactive_file_bytes: get("inactive_file"),
        rss_bytes: get("rss"),
        cache_bytes: get("cache"),
        mapped_file_bytes: get("mapped_file"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        fail_count: read_u64(&dir.join("memory.failcnt"))?,
        max_usage_bytes: read_u64(&dir.join("memory.max_usage_in_bytes"))?,
    };
    // memsw counts memory plus swap; the files exist only with swap accounting on.
    let swap = match read_u64(&dir.join("memory.memsw.usage_in_bytes"))? {
        Some(memsw) => {
            let memsw_limit = limit(read_u64(&dir.join("memory.memsw.limit_in_bytes"))?);
            Some(SwapStats {
                usage_bytes: memsw.saturating_sub(usage),
                limit_bytes: match (memsw_limit, limit_bytes) {
                    (Some(both), Some(mem)) => Some(both.saturating_sub(mem)),
                    _ => None,
                },
            })
        }
        None => None,
    };
    Ok((Some(memory), swap))
}
