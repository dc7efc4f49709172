//! Which cgroup hierarchies are mounted under a root, detected from mountinfo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mountinfo::{self, MountEntry};

/// The v1 controllers the kernel knows; anything else in a cgroup mount's super options is a
/// mount option (rw, xattr, noprefix, release_agent=..., ...).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
    "debug",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// One cgroup2 mount at the root.
    V2,
    /// A cgroup (v1) mount per controller set under the root.
    V1,
    /// v1 controllers plus a cgroup2 mount at <root>/unified (systemd's "hybrid").
    Hybrid,
}

/// One v1 hierarchy: where it is mounted and which controllers it carries (named hierarchies
/// such as "name=systemd" included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub mount_point: PathBuf,
    pub controllers: Vec<String>,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup hierarchies mounted under a root (normally /sys/fs/cgroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    pub root: PathBuf,
    /// v1 hierarchies, sorted by mount point.
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount: the root itself (v2) or <root>/unified (hybrid).
    pub unified: Option<PathBuf>,
}

impl CgroupLayout {
    /// Detects the layout under `root` from /proc/self/mountinfo.
    pub fn detect(root: &Path) -> Result<Self> {
        let root = std::fs::canonicalize(root).map_err(|e| Error::io("resolving", root, e))?;
        let text = std::fs::read_to_string(mountinfo::SELF_MOUNTINFO)
            .map_err(|e| Error::io("reading", mountinfo::SELF_MOUNTINFO, e))?;
        Self::from_mountinfo(&root, &text)
    }

    /// The layout under `root` (absolute, canonical) described by `mountinfo` text.
    pub fn from_mountinfo(root: &Path, mountinfo: &str) -> Result<Self> {
        // The mount visible at a path is the last one mounted there.
        let mut visible: BTreeMap<&Path, &MountEntry> = BTreeMap::new();
        let entries = mountinfo::parse(mountinfo);
        for entry in &entries {
            visible.insert(&entry.mount_point, entry);
        }
        if visible.get(root).is_some_and(|e| e.fs_type == "cgroup2") {
            return Ok(CgroupLayout { root: root.to_path_buf(), v1: Vec::new(), unified: Some(root.to_path_buf()) });
        }
        let unified_path = root.join("unified");
        let unified = visible.get(unified_path.as_path()).filter(|e| e.fs_type == "cgroup2").map(|_| unified_path);
        let v1: Vec<V1Hierarchy> = visible
            .values()
            .filter(|e| e.fs_type == "cgroup" && e.mount_point.starts_with(root) && e.mount_point != root)
            .filter_map(|e| {
                let controllers: Vec<String> = e
                    .super_option_list()
                    .filter(|o| o.starts_with("name=") || V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect();
                (!controllers.is_empty()).then(|| V1Hierarchy { mount_point: e.mount_point.clone(), controllers })
            })
            .collect();
        if v1.is_empty() {
            return Err(Error::NoCgroupHierarchy { root: root.to_path_buf() });
        }
        Ok(CgroupLayout { root: root.to_path_buf(), v1, unified })
    }

    pub fn mode(&self) -> CgroupMode {
        match (self.v1.is_empty(), self.unified.is_some()) {
            (true, _) => CgroupMode::V2,
            (false, true) => CgroupMode::Hybrid,
            (false, false) => CgroupMode::V1,
        }
    }

    /// The v1 hierarchy carrying `controller` (e.g. "memory", "name=systemd").
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }

    /// The directory of `cgroup` (a path like "/kubepods/podX/ID") in every hierarchy.
    pub fn dirs(&self, cgroup: &str) -> Vec<PathBuf> {
        self.hierarchy_mounts().map(|m| join_cgroup(m, cgroup)).collect()
    }

    /// Every hierarchy's mount point: the v1 ones, then the cgroup2 one.
    pub fn hierarchy_mounts(&self) -> impl Iterator<Item = &Path> {
        self.v1.iter().map(|h| h.mount_point.as_path()).chain(self.unified.as_deref())
    }
}

/// `cgroup` ("/a/b") under a hierarchy mount.
pub(crate) fn join_cgroup(mount: &Path, cgroup: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if rel.is_empty() { mount.to_path_buf() } else { mount.join(rel) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /R rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /R/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /R/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /R/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /R/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /R/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /R/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 27 0:39 / /elsewhere/cpu rw,relatime - cgroup cgroup rw,cpu
";

    #[test]
    fn detects_hybrid() {
        let l = CgroupLayout::from_mountinfo(Path::new("/R"), HYBRID).unwrap();
        assert_eq!(l.mode(), CgroupMode::Hybrid);
        assert_eq!(l.unified.as_deref(), Some(Path::new("/R/unified")));
        let mounts: Vec<_> = l.v1.iter().map(|h| h.mount_point.to_str().unwrap()).collect();
        assert_eq!(mounts, ["/R/cpu", "/R/cpuacct", "/R/cpuset", "/R/memory", "/R/systemd"]);
        assert_eq!(l.v1_hierarchy("name=systemd").unwrap().controllers, ["name=systemd"]);
        assert_eq!(l.v1_hierarchy("cpuset").unwrap().controllers, ["cpuset"]);
        assert!(l.v1_hierarchy("pids").is_none());
        assert_eq!(l.dirs("/k/p").len(), 6);
        assert_eq!(l.dirs("/k/p")[5], Path::new("/R/unified/k/p"));
    }

    #[test]
    fn detects_v1_without_unified() {
        let text = HYBRID.lines().filter(|l| !l.contains("cgroup2")).collect::<Vec<_>>().join("\n");
        let l = CgroupLayout::from_mountinfo(Path::new("/R"), &text).unwrap();
        assert_eq!(l.mode(), CgroupMode::V1);
        assert_eq!(l.unified, None);
    }

    #[test]
    fn detects_v2() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
50 31 0:40 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        let l = CgroupLayout::from_mountinfo(Path::new("/sys/fs/cgroup"), text).unwrap();
        assert_eq!(l.mode(), CgroupMode::V2);
        assert_eq!(l.dirs("/kubepods/podX/ID"), [PathBuf::from("/sys/fs/cgroup/kubepods/podX/ID")]);
        assert_eq!(l.dirs("/"), [PathBuf::from("/sys/fs/cgroup")]);
    }

    #[test]
    fn combined_controllers_in_one_hierarchy() {
        let text = "32 31 0:29 / /R/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let l = CgroupLayout::from_mountinfo(Path::new("/R"), text).unwrap();
        assert_eq!(l.v1[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l.v1_hierarchy("cpuacct").unwrap().mount_point, Path::new("/R/cpu,cpuacct"));
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let err = CgroupLayout::from_mountinfo(Path::new("/R"), "22 27 0:21 / /proc rw - proc proc rw\n").unwrap_err();
        assert!(matches!(err, Error::NoCgroupHierarchy { .. }));
    }

    #[test]
    fn detects_this_machine() {
        // Whatever the host has, detection must find something and list existing directories.
        let l = CgroupLayout::detect(Path::new(super::super::DEFAULT_ROOT)).unwrap();
        for m in l.hierarchy_mounts() {
            assert!(m.join("cgroup.procs").exists(), "{}", m.display());
        }
    }
}
