//! Making, joining and removing a cgroup in every hierarchy of a layout.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::layout::CgroupLayout;
use super::path::validate_cgroup_path;
use crate::error::{Error, Result};

/// How long a removal waits for a cgroup to empty (the last process may still be exiting).
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

impl CgroupLayout {
    /// Creates `cgroup` (and missing parents) in every hierarchy. In a v1 cpuset hierarchy each
    /// level gets its parent's cpuset.cpus and cpuset.mems when its own are empty: a process
    /// cannot join a cpuset cgroup with no CPUs or memory nodes (ENOSPC).
    pub fn create(&self, cgroup: &str) -> Result<()> {
        validate_cgroup_path(cgroup)?;
        for hierarchy in &self.v1 {
            create_levels(&hierarchy.mount_point, cgroup, hierarchy.has("cpuset"))?;
        }
        if let Some(unified) = &self.unified {
            create_levels(unified, cgroup, false)?;
        }
        Ok(())
    }

    /// Moves `pid` into `cgroup` in every hierarchy.
    pub fn add_process(&self, cgroup: &str, pid: i32) -> Result<()> {
        validate_cgroup_path(cgroup)?;
        for dir in self.dirs(cgroup) {
            let procs = dir.join("cgroup.procs");
            write_file(&procs, &format!("{pid}\n")).map_err(|e| Error::io("writing", procs, e))?;
        }
        Ok(())
    }

    /// Removes `cgroup` (only the leaf: the parents belong to whoever made them) from every
    /// hierarchy. Idempotent; waits briefly while it is still busy. Every hierarchy is tried even
    /// after a failure; the first failure is returned.
    pub fn remove(&self, cgroup: &str) -> Result<()> {
        validate_cgroup_path(cgroup)?;
        if cgroup.trim_matches('/').is_empty() {
            return Err(Error::InvalidCgroupParent {
                parent: cgroup.to_string(),
                reason: "refusing to remove a hierarchy's root".into(),
            });
        }
        let mut first_error = None;
        for dir in self.dirs(cgroup) {
            if let Err(e) = remove_dir_patiently(&dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The pids in the cgroup directory `dir` (its cgroup.procs).
pub fn procs(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    let text = fs::read_to_string(&path).map_err(|e| Error::io("reading", path, e))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

fn create_levels(mount: &Path, cgroup: &str, cpuset: bool) -> Result<()> {
    let mut dir = mount.to_path_buf();
    for component in cgroup.split('/').filter(|c| !c.is_empty()) {
        let parent = dir.clone();
        dir.push(component);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("creating cgroup", dir, e)),
        }
        if cpuset {
            inherit_if_empty(&parent, &dir, "cpuset.cpus")?;
            inherit_if_empty(&parent, &dir, "cpuset.mems")?;
        }
    }
    Ok(())
}

fn inherit_if_empty(parent: &Path, dir: &Path, file: &str) -> Result<()> {
    let own = dir.join(file);
    match fs::read_to_string(&own) {
        Ok(v) if !v.trim().is_empty() => return Ok(()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading", own, e)),
    }
    let from = parent.join(file);
    let value = fs::read_to_string(&from).map_err(|e| Error::io("reading", from, e))?;
    write_file(&own, value.trim()).map_err(|e| Error::io("writing", own, e))
}

/// One write(2) of `value`: cgroup files act on each write.
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn remove_dir_patiently(dir: &PathBuf) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if start.elapsed() >= REMOVE_PATIENCE {
                    let waited_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    return Err(Error::CgroupBusy { path: dir.clone(), waited_ms });
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(Error::io("removing cgroup", dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hybrid fixture tree under a tempdir, and its mountinfo.
    fn fixture() -> (tempfile::TempDir, CgroupLayout) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for h in ["cpu", "cpuset", "systemd", "unified"] {
            fs::create_dir(root.join(h)).unwrap();
        }
        fs::write(root.join("cpuset/cpuset.cpus"), "0-3\n").unwrap();
        fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        let r = root.display();
        let mountinfo = format!(
            "32 31 0:29 / {r}/cpu rw - cgroup cgroup rw,cpu\n\
             34 31 0:31 / {r}/cpuset rw - cgroup cgroup rw,cpuset\n\
             40 31 0:37 / {r}/systemd rw - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / {r}/unified rw - cgroup2 cgroup2 rw\n"
        );
        let layout = CgroupLayout::from_mountinfo(root, &mountinfo).unwrap();
        (tmp, layout)
    }

    #[test]
    fn creates_in_every_hierarchy_and_copies_cpuset() {
        let (tmp, layout) = fixture();
        layout.create("/kubepods/podX/ID").unwrap();
        for h in ["cpu", "cpuset", "systemd", "unified"] {
            assert!(tmp.path().join(h).join("kubepods/podX/ID").is_dir(), "{h}");
        }
        for level in ["kubepods", "kubepods/podX", "kubepods/podX/ID"] {
            let d = tmp.path().join("cpuset").join(level);
            assert_eq!(fs::read_to_string(d.join("cpuset.cpus")).unwrap(), "0-3");
            assert_eq!(fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
        }
        assert!(!tmp.path().join("cpu/kubepods/cpuset.cpus").exists());
        // Idempotent.
        layout.create("/kubepods/podX/ID").unwrap();
    }

    #[test]
    fn keeps_a_level_that_has_its_own_cpuset() {
        let (tmp, layout) = fixture();
        fs::create_dir(tmp.path().join("cpuset/kubepods")).unwrap();
        fs::write(tmp.path().join("cpuset/kubepods/cpuset.cpus"), "1").unwrap();
        layout.create("/kubepods/ID").unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("cpuset/kubepods/cpuset.cpus")).unwrap(), "1");
        assert_eq!(fs::read_to_string(tmp.path().join("cpuset/kubepods/ID/cpuset.cpus")).unwrap(), "1");
    }

    #[test]
    fn removes_the_leaf_only_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("cpu")).unwrap();
        let mountinfo = format!("32 31 0:29 / {}/cpu rw - cgroup cgroup rw,cpu\n", tmp.path().display());
        let layout = CgroupLayout::from_mountinfo(tmp.path(), &mountinfo).unwrap();
        layout.create("/a/b").unwrap();
        layout.remove("/a/b").unwrap();
        assert!(!tmp.path().join("cpu/a/b").exists());
        assert!(tmp.path().join("cpu/a").is_dir());
        layout.remove("/a/b").unwrap();
        assert!(layout.remove("/").is_err());
        assert!(layout.remove("/a/../b").is_err());
    }

    #[test]
    fn add_process_writes_cgroup_procs() {
        let (tmp, layout) = fixture();
        layout.create("/p").unwrap();
        layout.add_process("/p", 4242).unwrap();
        assert_eq!(procs(&tmp.path().join("unified/p")).unwrap(), [4242]);
        assert_eq!(procs(&tmp.path().join("systemd/p")).unwrap(), [4242]);
    }
}
