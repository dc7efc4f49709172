//! Cgroup resources, the OOM score and the cgroup path, as containerd's `WithResources`,
//! `WithOOMScoreAdj` (with `restrict_oom_score_adj`) and `getCgroupsPath`.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxResources};

use crate::error::{Error, Result};
use crate::ports::container::Resources;

use super::HostCaps;

/// The OCI resources: the device rules plus what the CRI asked for. Zero means "not set".
pub fn linux_resources(
    r: Option<&Resources>,
    device_rules: Vec<LinuxDeviceCgroup>,
    host: &HostCaps,
) -> Result<LinuxResources> {
    let mut out = match r {
        Some(r) => cgroup_resources(r, host)?,
        None => LinuxResources::default(),
    };
    out.set_devices(Some(device_rules));
    Ok(out)
}

/// What the CRI asked for as OCI resources, without device rules: the whole of CreateContainer's
/// conversion and validation, and what `runtime update --resources` is given, so both RPCs
/// accept and apply the same values. Fields left out (CRI's zero) keep their current value.
pub fn cgroup_resources(r: &Resources, host: &HostCaps) -> Result<LinuxResources> {
    let mut out = LinuxResources::default();
    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if r.cpu_period != 0 {
        cpu.set_period(Some(non_negative("cpu_period", r.cpu_period)?));
        cpu_set = true;
    }
    if r.cpu_quota != 0 {
        // -1 is "no limit" in cgroup v1 terms; anything below is meaningless.
        if r.cpu_quota < -1 {
            return Err(Error::invalid(format!(
                "resources.cpu_quota {} must be -1 (no limit) or positive",
                r.cpu_quota
            )));
        }
        cpu.set_quota(Some(r.cpu_quota));
        cpu_set = true;
    }
    if r.cpu_shares != 0 {
        cpu.set_shares(Some(non_negative("cpu_shares", r.cpu_shares)?));
        cpu_set = true;
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(r.cpuset_cpus.clone()));
        cpu_set = true;
    }
    if !r.cpuset_mems.is_empty() {
        cpu.set_mems(Some(r.cpuset_mems.clone()));
        cpu_set = true;
    }
    if cpu_set {
        out.set_cpu(Some(cpu));
    }

    let mut memory = LinuxMemory::default();
    let mut memory_set = false;
    if r.memory_limit_bytes != 0 {
        let limit = r.memory_limit_bytes;
        if limit < 0 {
            return Err(Error::invalid(format!("resources.memory_limit_in_bytes {limit} must be positive")));
        }
        memory.set_limit(Some(limit));
        // Without an explicit swap limit, memory+swap equals the memory limit, so the
        // container does not swap (containerd's default, where the swap controller exists).
        if r.memory_swap_limit_bytes == 0 && host.swap {
            memory.set_swap(Some(limit));
        }
        memory_set = true;
    }
    // Checked whether or not the host accounts swap, so a request is valid or not on every node.
    let swap = r.memory_swap_limit_bytes;
    if swap < -1 {
        return Err(Error::invalid(format!(
            "resources.memory_swap_limit_in_bytes {swap} must be -1 (unlimited) or positive"
        )));
    }
    // The OCI swap limit is memory + swap: below the memory limit the runtime refuses it.
    if swap > 0 && r.memory_limit_bytes > 0 && swap < r.memory_limit_bytes {
        return Err(Error::invalid(format!(
            "resources.memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes {}: it counts memory \
             plus swap, so it must be at least the memory limit (or -1 for unlimited swap)",
            r.memory_limit_bytes
        )));
    }
    if swap != 0 && host.swap {
        memory.set_swap(Some(swap));
        memory_set = true;
    }
    if memory_set {
        out.set_memory(Some(memory));
    }

    if !r.hugepage_limits.is_empty() {
        let mut limits = Vec::with_capacity(r.hugepage_limits.len());
        for (size, limit) in &r.hugepage_limits {
            if !host.hugepage_sizes.iter().any(|s| s == size) {
                return Err(Error::invalid(format!(
                    "resources.hugepage_limits: page size {size:?} is not offered by this host (it offers {})",
                    if host.hugepage_sizes.is_empty() { "none".to_string() } else { host.hugepage_sizes.join(", ") }
                )));
            }
            let limit = i64::try_from(*limit).map_err(|_| {
                Error::invalid(format!("resources.hugepage_limits[{size}]: {limit} bytes is out of range"))
            })?;
            let mut l = LinuxHugepageLimit::default();
            l.set_page_size(size.clone()).set_limit(limit);
            limits.push(l);
        }
        out.set_hugepage_limits(Some(limits));
    }

    if !r.unified.is_empty() {
        if !host.cgroup_v2 {
            return Err(Error::invalid(
                "resources.unified sets cgroup v2 files, but this host uses cgroup v1; leave it empty",
            ));
        }
        out.set_unified(Some(r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()));
    }
    Ok(out)
}

fn non_negative(field: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::invalid(format!("resources.{field} {v} must not be negative")))
}

/// The process's oom_score_adj: None without resources (as containerd); else the asked value,
/// raised to the lowest the daemon may set (it cannot lower a score without CAP_SYS_RESOURCE).
pub fn oom_score_adj(r: Option<&Resources>, host: &HostCaps) -> Result<Option<i32>> {
    let Some(r) = r else { return Ok(None) };
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(Error::invalid(format!(
            "resources.oom_score_adj {} is out of range (-1000..=1000)",
            r.oom_score_adj
        )));
    }
    let adj = r.oom_score_adj.max(host.min_oom_score_adj).clamp(-1000, 1000);
    i32::try_from(adj).map(Some).map_err(|_| Error::invalid(format!("resources.oom_score_adj {adj} is out of range")))
}

/// The container's cgroupsPath: cgroupfs `<pod cgroup parent>/<id>` (`/crius/<id>` without a
/// parent, as containerd's `/k8s.io/<id>`); systemd `<slice>:crius:<id>`, which runc turns into
/// `crius-<id>.scope` under the slice.
pub fn cgroups_path(cgroup_parent: &str, container_id: &str, host: &HostCaps) -> Result<String> {
    if host.systemd_cgroup {
        // containerd takes the last element, so "a.slice/b.slice" works too.
        let slice = cgroup_parent.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        if slice.is_empty() {
            return Ok(format!("system.slice:crius:{container_id}"));
        }
        if !slice.ends_with(".slice") {
            return Err(Error::invalid(format!(
                "cgroup_parent {cgroup_parent:?}: the systemd cgroup driver wants a slice name such as \
                 kubepods-besteffort-podX.slice"
            )));
        }
        return Ok(format!("{slice}:crius:{container_id}"));
    }
    let parent = cgroup_parent.trim_end_matches('/');
    if parent.is_empty() {
        return Ok(format!("/crius/{container_id}"));
    }
    if !parent.starts_with('/') || parent.split('/').any(|c| c == "..") {
        return Err(Error::invalid(format!(
            "cgroup_parent {cgroup_parent:?} must be an absolute path without '..' for the cgroupfs driver"
        )));
    }
    Ok(format!("{parent}/{container_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn v1() -> HostCaps {
        HostCaps { swap: true, hugepage_sizes: vec!["2MB".into()], min_oom_score_adj: -998, ..Default::default() }
    }

    #[test]
    fn none_is_only_devices() {
        let r = linux_resources(None, vec![], &v1()).unwrap();
        assert!(r.cpu().is_none() && r.memory().is_none() && r.devices().as_ref().is_some_and(|d| d.is_empty()));
    }

    #[test]
    fn cpu_and_memory() {
        let res = Resources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            memory_limit_bytes: 1 << 30,
            ..Default::default()
        };
        let r = linux_resources(Some(&res), vec![], &v1()).unwrap();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.period(), cpu.quota(), cpu.shares()), (Some(100_000), Some(50_000), Some(512)));
        assert_eq!((cpu.cpus().as_deref(), cpu.mems().as_deref()), (Some("0-1"), Some("0")));
        let mem = r.memory().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(1 << 30), Some(1 << 30)));
    }

    #[test]
    fn swap_as_asked_and_only_where_available() {
        let res = Resources { memory_limit_bytes: 100, memory_swap_limit_bytes: 300, ..Default::default() };
        let r = linux_resources(Some(&res), vec![], &v1()).unwrap();
        assert_eq!(r.memory().unwrap().swap(), Some(300));
        let no_swap = HostCaps { swap: false, ..v1() };
        let r = linux_resources(Some(&res), vec![], &no_swap).unwrap();
        assert_eq!((r.memory().unwrap().limit(), r.memory().unwrap().swap()), (Some(100), None));
    }

    #[test]
    fn negative_values_are_invalid() {
        for res in [
            Resources { cpu_shares: -2, ..Default::default() },
            Resources { cpu_period: -1, ..Default::default() },
            Resources { cpu_quota: -5, ..Default::default() },
            Resources { memory_limit_bytes: -1, ..Default::default() },
        ] {
            let err = linux_resources(Some(&res), vec![], &v1()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{res:?}");
            assert!(err.to_string().contains("resources."), "{err}");
        }
        let ok = Resources { cpu_quota: -1, ..Default::default() };
        assert!(linux_resources(Some(&ok), vec![], &v1()).is_ok());
    }

    #[test]
    fn swap_is_checked_on_every_host() {
        let no_swap = HostCaps { swap: false, ..v1() };
        for host in [v1(), no_swap] {
            let below = Resources { memory_limit_bytes: 200, memory_swap_limit_bytes: 100, ..Default::default() };
            let err = cgroup_resources(&below, &host).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains("at least the memory limit"), "{err}");
            let negative = Resources { memory_swap_limit_bytes: -2, ..Default::default() };
            assert!(cgroup_resources(&negative, &host).unwrap_err().to_string().contains("-1 (unlimited)"));
            let unlimited = Resources { memory_limit_bytes: 200, memory_swap_limit_bytes: -1, ..Default::default() };
            let swap = cgroup_resources(&unlimited, &host).unwrap().memory().unwrap().swap();
            assert_eq!(swap, host.swap.then_some(-1));
        }
    }

    #[test]
    fn cgroup_resources_are_linux_resources_without_devices() {
        let res = Resources { memory_limit_bytes: 1 << 20, cpu_shares: 2, ..Default::default() };
        let update = cgroup_resources(&res, &v1()).unwrap();
        assert!(update.devices().is_none());
        let mut create = linux_resources(Some(&res), vec![LinuxDeviceCgroup::default()], &v1()).unwrap();
        create.set_devices(None);
        assert_eq!(update, create);
        assert_eq!(cgroup_resources(&Resources::default(), &v1()).unwrap(), LinuxResources::default());
    }

    #[test]
    fn hugepages_only_offered_sizes() {
        let mut res = Resources::default();
        res.hugepage_limits.insert("2MB".into(), 4 << 20);
        let r = linux_resources(Some(&res), vec![], &v1()).unwrap();
        let h = &r.hugepage_limits().as_ref().unwrap()[0];
        assert_eq!((h.page_size().as_str(), h.limit()), ("2MB", 4 << 20));
        res.hugepage_limits.insert("1GB".into(), 1 << 30);
        let err = linux_resources(Some(&res), vec![], &v1()).unwrap_err();
        assert!(err.to_string().contains("\"1GB\"") && err.to_string().contains("2MB"), "{err}");
    }

    #[test]
    fn unified_needs_cgroup_v2() {
        let mut res = Resources::default();
        res.unified.insert("memory.high".into(), "1000000".into());
        let err = linux_resources(Some(&res), vec![], &v1()).unwrap_err();
        assert!(err.to_string().contains("cgroup v1"), "{err}");
        let v2 = HostCaps { cgroup_v2: true, ..v1() };
        let r = linux_resources(Some(&res), vec![], &v2).unwrap();
        assert_eq!(r.unified().as_ref().unwrap()["memory.high"], "1000000");
    }

    #[test]
    fn oom_score_is_clamped() {
        assert_eq!(oom_score_adj(None, &v1()).unwrap(), None);
        let r = |adj| Resources { oom_score_adj: adj, ..Default::default() };
        assert_eq!(oom_score_adj(Some(&r(-999)), &v1()).unwrap(), Some(-998));
        assert_eq!(oom_score_adj(Some(&r(500)), &v1()).unwrap(), Some(500));
        assert_eq!(oom_score_adj(Some(&r(0)), &HostCaps::default()).unwrap(), Some(0));
        assert!(oom_score_adj(Some(&r(1001)), &v1()).is_err());
    }

    #[test]
    fn cgroup_paths() {
        let fs = HostCaps::default();
        assert_eq!(cgroups_path("/kubepods/besteffort/pod1", "c1", &fs).unwrap(), "/kubepods/besteffort/pod1/c1");
        assert_eq!(cgroups_path("", "c1", &fs).unwrap(), "/crius/c1");
        assert!(cgroups_path("kubepods", "c1", &fs).is_err());
        let sd = HostCaps { systemd_cgroup: true, ..Default::default() };
        assert_eq!(
            cgroups_path("kubepods-besteffort-pod1.slice", "c1", &sd).unwrap(),
            "kubepods-besteffort-pod1.slice:crius:c1"
        );
        assert_eq!(
            cgroups_path("/kubepods.slice/kubepods-pod1.slice", "c1", &sd).unwrap(),
            "kubepods-pod1.slice:crius:c1"
        );
        assert_eq!(cgroups_path("", "c1", &sd).unwrap(), "system.slice:crius:c1");
        assert!(cgroups_path("/kubepods", "c1", &sd).unwrap_err().to_string().contains("slice"));
    }
}
