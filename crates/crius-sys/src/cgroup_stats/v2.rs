//! cgroup v2: one directory, every controller's files in it.

use std::path::Path;

use super::files::{self, limit, read_flat_keyed, read_u64};
use super::{CgroupStats, CpuStats, MemoryStats, SwapStats};
use crate::error::Result;

pub(super) fn read(dir: &Path) -> Result<Option<CgroupStats>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut stats = CgroupStats::default();
    if let Some(stat) = read_flat_keyed(&dir.join("cpu.stat"))?
        && let Some(usage_us) = stat.get("usage_usec")
    {
        let ns = |key: &str| stat.get(key).map(|us| us.saturating_mul(1000));
        stats.cpu = Some(CpuStats {
            usage_ns: usage_us.saturating_mul(1000),
            user_ns: ns("user_usec"),
            system_ns: ns("system_usec"),
            throttled_periods: stat.get("nr_throttled").copied(),
            throttled_ns: ns("throttled_usec"),
        });
    }
    if let Some(usage) = read_u64(&dir.join("memory.current"))? {
        let stat = read_flat_keyed(&dir.join("memory.stat"))?.unwrap_or_default();
        let get = |key: &str| stat.get(key).copied().unwrap_or(0);
        let events = read_flat_keyed(&dir.join("memory.events"))?;
        stats.memory = Some(MemoryStats {
            usage_bytes: usage,
            // "max" does not parse: unlimited, like a missing file.
            limit_bytes: limit(read_u64(&dir.join("memory.max"))?),
            inactive_file_bytes: get("inactive_file"),
            rss_bytes: get("anon"),
            cache_bytes: get("file"),
            mapped_file_bytes: get("file_mapped"),
            page_faults: get("pgfault"),
            major_page_faults: get("pgmajfault"),
            fail_count: events.and_then(|e| e.get("max").copied()),
            max_usage_bytes: read_u64(&dir.join("memory.peak"))?,
        });
        if let Some(swap) = read_u64(&dir.join("memory.swap.current"))? {
            stats.swap =
                Some(SwapStats { usage_bytes: swap, limit_bytes: limit(read_u64(&dir.join("memory.swap.max"))?) });
        }
    }
    stats.pids = match read_u64(&dir.join("pids.current"))? {
        Some(n) => Some(n),
        None => files::count_procs_recursive(dir)?,
    };
    Ok(Some(stats))
}
