//! Raw samples into usage: working set, available bytes, nano-cores.

use super::cpu::CpuRates;
use super::model::{CpuUsage, MemoryUsage, SwapUsage};
use crate::ports::stats::{CgroupSample, CpuSample, MemorySample, SwapSample};

pub(super) fn cpu(rates: &CpuRates, key: &str, cpu: &CpuSample, at_ns: i64) -> CpuUsage {
    CpuUsage {
        timestamp_ns: at_ns,
        usage_core_ns: cpu.usage_ns,
        usage_nano_cores: rates.observe(key, cpu.usage_ns, at_ns),
    }
}

pub(super) fn memory(m: &MemorySample, at_ns: i64) -> MemoryUsage {
    // As cAdvisor: the working set leaves out the inactive page cache the kernel reclaims first.
    let working_set = m.usage_bytes.saturating_sub(m.inactive_file_bytes);
    MemoryUsage {
        timestamp_ns: at_ns,
        working_set_bytes: working_set,
        available_bytes: m.limit_bytes.map(|limit| limit.saturating_sub(working_set)),
        usage_bytes: m.usage_bytes,
        rss_bytes: m.rss_bytes,
        page_faults: m.page_faults,
        major_page_faults: m.major_page_faults,
    }
}

pub(super) fn swap(s: &SwapSample, at_ns: i64) -> SwapUsage {
    SwapUsage {
        timestamp_ns: at_ns,
        usage_bytes: s.usage_bytes,
        available_bytes: s.limit_bytes.map(|limit| limit.saturating_sub(s.usage_bytes)),
    }
}

/// The sum of several cgroups' samples (a pod without a cgroup of its own is the sum of its
/// containers). Limits do not add up: a sum has none.
pub(super) fn sum<'a>(samples: impl IntoIterator<Item = &'a CgroupSample>) -> Option<CgroupSample> {
    let mut total: Option<CgroupSample> = None;
    for s in samples {
        let t = total.get_or_insert_with(CgroupSample::default);
        if let Some(c) = &s.cpu {
            let tc = t.cpu.get_or_insert_with(Default::default);
            tc.usage_ns = tc.usage_ns.saturating_add(c.usage_ns);
            tc.user_ns = add_opt(tc.user_ns, c.user_ns);
            tc.system_ns = add_opt(tc.system_ns, c.system_ns);
        }
        if let Some(m) = &s.memory {
            let tm = t.memory.get_or_insert_with(Default::default);
            tm.usage_bytes = tm.usage_bytes.saturating_add(m.usage_bytes);
            tm.inactive_file_bytes = tm.inactive_file_bytes.saturating_add(m.inactive_file_bytes);
            tm.rss_bytes = tm.rss_bytes.saturating_add(m.rss_bytes);
            tm.cache_bytes = tm.cache_bytes.saturating_add(m.cache_bytes);
            tm.mapped_file_bytes = tm.mapped_file_bytes.saturating_add(m.mapped_file_bytes);
            tm.page_faults = tm.page_faults.saturating_add(m.page_faults);
            tm.major_page_faults = tm.major_page_faults.saturating_add(m.major_page_faults);
        }
        if let Some(sw) = &s.swap {
            let ts = t.swap.get_or_insert_with(Default::default);
            ts.usage_bytes = ts.usage_bytes.saturating_add(sw.usage_bytes);
        }
        if let Some(p) = s.pids {
            t.pids = Some(t.pids.unwrap_or(0).saturating_add(p));
        }
    }
    total
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}
