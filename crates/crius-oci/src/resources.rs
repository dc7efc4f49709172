//! CRI resources as OCI `LinuxResources`, the JSON `update --resources` reads. CRI's zero means
//! "not set", so zero fields are left out (the runtime keeps the current value).

use crius_core::ports::container::Resources;
use oci_spec::runtime::{LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};

/// Converts `r`. `oom_score_adj` is not a cgroup setting and cannot be updated on a running
/// container: it is not part of the result. With a memory limit and no swap limit, the swap
/// limit (memory + swap, in v1 terms) is set equal to the memory limit — no swap, as CRI-O does —
/// since v1 refuses a memory limit above the current memsw limit.
pub fn to_linux_resources(r: &Resources) -> LinuxResources {
    let mut out = LinuxResources::default();
    let cpu_set = r.cpu_shares > 0
        || r.cpu_quota != 0
        || r.cpu_period > 0
        || !r.cpuset_cpus.is_empty()
        || !r.cpuset_mems.is_empty();
    if cpu_set {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(u64::try_from(r.cpu_shares).ok().filter(|&s| s > 0));
        cpu.set_quota((r.cpu_quota != 0).then_some(r.cpu_quota));
        cpu.set_period(u64::try_from(r.cpu_period).ok().filter(|&p| p > 0));
        cpu.set_cpus((!r.cpuset_cpus.is_empty()).then(|| r.cpuset_cpus.clone()));
        cpu.set_mems((!r.cpuset_mems.is_empty()).then(|| r.cpuset_mems.clone()));
        out.set_cpu(Some(cpu));
    }
    if r.memory_limit_bytes > 0 || r.memory_swap_limit_bytes > 0 {
        let mut memory = LinuxMemory::default();
        let limit = (r.memory_limit_bytes > 0).then_some(r.memory_limit_bytes);
        memory.set_limit(limit);
        let swap = if r.memory_swap_limit_bytes > 0 { Some(r.memory_swap_limit_bytes) } else { limit };
        memory.set_swap(swap);
        out.set_memory(Some(memory));
    }
    if !r.hugepage_limits.is_empty() {
        let limits = r
            .hugepage_limits
            .iter()
            .map(|(size, limit)| {
                let mut l = LinuxHugepageLimit::default();
                l.set_page_size(size.clone());
                l.set_limit(i64::try_from(*limit).unwrap_or(i64::MAX));
                l
            })
            .collect();
        out.set_hugepage_limits(Some(limits));
    }
    if !r.unified.is_empty() {
        out.set_unified(Some(r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn json_of(r: &Resources) -> serde_json::Value {
        serde_json::to_value(to_linux_resources(r)).unwrap()
    }

    #[test]
    fn nothing_set_is_empty() {
        assert_eq!(json_of(&Resources::default()), json!({}));
    }

    #[test]
    fn everything() {
        let mut r = Resources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_bytes: 64 << 20,
            memory_swap_limit_bytes: 128 << 20,
            oom_score_adj: 500,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            ..Default::default()
        };
        r.hugepage_limits.insert("2MB".into(), 4 << 20);
        r.unified.insert("memory.high".into(), "1000000".into());
        assert_eq!(
            json_of(&r),
            json!({
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
                "memory": {"limit": 67108864, "swap": 134217728},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
                "unified": {"memory.high": "1000000"}
            })
        );
    }

    #[test]
    fn memory_without_swap_means_no_swap() {
        let r = Resources { memory_limit_bytes: 1 << 20, ..Default::default() };
        assert_eq!(json_of(&r), json!({"memory": {"limit": 1048576, "swap": 1048576}}));
        let r = Resources { cpu_shares: 2, ..Default::default() };
        assert_eq!(json_of(&r), json!({"cpu": {"shares": 2}}));
    }
}
