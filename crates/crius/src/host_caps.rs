//! Facts of the host, detected once at start and passed to the spec builder, so specs do not
//! depend on the machine that tests them.

use std::fs;
use std::path::Path;

use crius_core::spec::HostCaps;

/// Capability names by number (linux/capability.h), for "ALL".
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];
const CAP_SYS_RESOURCE: u32 = 24;

pub fn detect(cgroup_root: &Path, systemd_cgroup: bool) -> HostCaps {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = status_mask(&status, "CapBnd:");
    let effective = status_mask(&status, "CapEff:");
    let own_oom = fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_default();
    let cgroup_v2 = cgroup_root.join("cgroup.controllers").exists();
    HostCaps {
        cgroup_v2,
        bounding_capabilities: capability_names(bounding),
        seccomp: Path::new("/proc/sys/kernel/seccomp/actions_avail").exists(),
        apparmor: fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y"),
        selinux: Path::new("/sys/fs/selinux/enforce").exists(),
        swap: swap_accounting(cgroup_root, cgroup_v2),
        hugepage_sizes: hugepage_sizes(Path::new("/sys/kernel/mm/hugepages")),
        // Without CAP_SYS_RESOURCE, lowering oom_score_adj below our own fails (what containerd's
        // restrict_oom_score_adj handles).
        min_oom_score_adj: if effective & (1 << CAP_SYS_RESOURCE) != 0 { -1000 } else { own_oom },
        systemd_cgroup,
    }
}

fn status_mask(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_default()
}

fn capability_names(mask: u64) -> Vec<String> {
    CAPABILITIES.iter().enumerate().filter(|(bit, _)| mask & (1 << bit) != 0).map(|(_, n)| n.to_string()).collect()
}

fn swap_accounting(cgroup_root: &Path, v2: bool) -> bool {
    if v2 {
        fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1)
    } else {
        cgroup_root.join("memory/memory.memsw.limit_in_bytes").exists()
    }
}

/// "hugepages-2048kB" -> "2MB", as the kubelet names page sizes.
fn hugepage_sizes(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut sizes: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some((kb, page_size_name(kb)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, n)| n).collect()
}

fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_masks() {
        let names = capability_names(0b1_0000_0001);
        assert_eq!(names, ["CAP_CHOWN", "CAP_SETPCAP"]);
        assert_eq!(capability_names(u64::MAX).len(), CAPABILITIES.len());
        assert_eq!(status_mask("Name:\tx\nCapBnd:\t000001ffffffffff\n", "CapBnd:"), 0x1ff_ffff_ffff);
    }

    #[test]
    fn page_size_names() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1048576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn hugepage_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hugepages-1048576kB")).unwrap();
        std::fs::create_dir(dir.path().join("hugepages-2048kB")).unwrap();
        assert_eq!(hugepage_sizes(dir.path()), ["2MB", "1GB"]);
    }
}
