//! Root integration tests of the calls that need privileges: mounts and real cgroups. Each test
//! works in its own temp dir or cgroup and cleans up through guards.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crius_sys::cgroups::{self, CgroupLayout, DEFAULT_ROOT};
use crius_sys::mounts::{self, TmpfsOptions};
use crius_sys::{mountinfo, process};

/// Unmounts everything under a temp dir (deepest first) before the dir goes.
struct MountGuard(tempfile::TempDir);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let mut under: Vec<PathBuf> = mountinfo::read_self()
            .unwrap()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(self.0.path()))
            .collect();
        under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in under {
            let _ = mounts::unmount(&p);
        }
    }
}

fn entry(path: &Path) -> Option<mountinfo::MountEntry> {
    let entries = mountinfo::read_self().unwrap();
    mountinfo::entry_at(path, &entries).cloned()
}

#[test]
fn shared_dir_pin_and_unpin() {
    let guard = MountGuard(tempfile::tempdir().unwrap());
    let dir = guard.0.path().join("ns");
    mounts::make_shared_mount_dir(&dir).unwrap();
    let canonical = std::fs::canonicalize(&dir).unwrap();
    assert!(mounts::is_mount_point(&dir).unwrap());
    assert!(entry(&canonical).unwrap().is_shared());
    // Twice is the same: no second mount stacked on the first.
    mounts::make_shared_mount_dir(&dir).unwrap();
    let stacked = mountinfo::read_self().unwrap().iter().filter(|m| m.mount_point == canonical).count();
    assert_eq!(stacked, 1);

    let pin = dir.join("net").join("x");
    mounts::bind_mount_file(Path::new("/proc/self/ns/net"), &pin).unwrap();
    assert_eq!(entry(&std::fs::canonicalize(&pin).unwrap()).unwrap().fs_type, "nsfs");
    assert_eq!(std::fs::metadata(&pin).unwrap().ino(), std::fs::metadata("/proc/self/ns/net").unwrap().ino());
    mounts::unmount_and_remove(&pin).unwrap();
    assert!(!pin.exists());
    mounts::unmount_and_remove(&pin).unwrap();
}

#[test]
fn dev_shm_tmpfs() {
    let guard = MountGuard(tempfile::tempdir().unwrap());
    let shm = guard.0.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    mounts::mount_tmpfs(&shm, &TmpfsOptions::default()).unwrap();
    let canonical = std::fs::canonicalize(&shm).unwrap();
    let e = entry(&canonical).unwrap();
    assert_eq!(e.fs_type, "tmpfs");
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(e.mount_options.split(',').any(|o| o == flag), "{flag} missing: {}", e.mount_options);
    }
    assert!(e.super_options.contains("size=65536k"), "{}", e.super_options);
    // 1777 is tmpfs's default, so mountinfo leaves it out: look at the root directory instead.
    assert_eq!(std::fs::metadata(&shm).unwrap().mode() & 0o7777, 0o1777);
    mounts::unmount(&shm).unwrap();
    assert!(!mounts::is_mount_point(&shm).unwrap());
    mounts::unmount(&shm).unwrap();
}

/// Removes a test cgroup parent in every hierarchy.
struct CgroupGuard {
    layout: CgroupLayout,
    parent: String,
    child: Option<std::process::Child>,
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.layout.dirs(&self.parent) {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten().filter(|e| e.path().is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

#[test]
fn real_cgroup_create_join_remove() {
    let layout = CgroupLayout::detect(Path::new(DEFAULT_ROOT)).unwrap();
    let parent = format!("/crius-sys-test-{}", std::process::id());
    let mut guard = CgroupGuard { layout: layout.clone(), parent: parent.clone(), child: None };
    let path = cgroups::cgroup_path(cgroups::CgroupDriver::Cgroupfs, &parent, "pod", false).unwrap();
    layout.create(&path).unwrap();
    let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    let start = process::proc_start_time(pid).unwrap();
    guard.child = Some(child);
    // Attaching works in every hierarchy, cpuset included (its cpus and mems were inherited).
    layout.add_process(&path, pid).unwrap();
    for dir in layout.dirs(&path) {
        assert_eq!(cgroups::procs(&dir).unwrap(), [pid], "{}", dir.display());
    }
    if let Some(cpuset) = layout.v1_hierarchy("cpuset") {
        let dir = cpuset.mount_point.join(path.trim_start_matches('/'));
        assert!(!std::fs::read_to_string(dir.join("cpuset.cpus")).unwrap().trim().is_empty());
    }
    // Removal right after the kill: the cgroup may still be busy while the process exits, and
    // remove waits for that.
    assert!(process::kill_verified(pid, start).unwrap());
    layout.remove(&path).unwrap();
    for dir in layout.dirs(&path) {
        assert!(!dir.exists(), "{}", dir.display());
    }
    layout.remove(&path).unwrap();
}
