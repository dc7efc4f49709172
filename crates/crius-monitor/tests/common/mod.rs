//! Shared harness for the root integration tests: a temp run dir, a unique cgroup parent, and
//! guards that clean up even when a test fails.

#![allow(dead_code)]

pub mod ctr;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crius_core::ports::{MonitorSpec, PodMonitor};
use crius_core::sandbox::model::{NewNamespaces, PodResources};
use crius_monitor::{MonitorConfig, MonitorPort};
use crius_sys::cgroups::{CgroupLayout, DEFAULT_ROOT};
use crius_sys::{mountinfo, mounts};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique name for this test process and call.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One test's world: its own run dir and netns dir, a cgroup parent of its own, a port.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub run_dir: PathBuf,
    pub netns_dir: PathBuf,
    pub cgroup_parent: String,
    pub port: MonitorPort,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let tmp = tempfile::Builder::new().prefix(&format!("crius-monitor-{name}-")).tempdir().unwrap();
        let run_dir = tmp.path().join("run");
        let netns_dir = tmp.path().join("netns");
        let mut config = MonitorConfig::new(env!("CARGO_BIN_EXE_crius-monitor-test"), &run_dir);
        config.netns_dir = Some(netns_dir.clone());
        let port = MonitorPort::new(config);
        Env { cgroup_parent: format!("/{}", unique(&format!("crius-test-{name}"))), tmp, run_dir, netns_dir, port }
    }

    pub fn spec(&self, pod_id: &str) -> MonitorSpec {
        MonitorSpec {
            pod_id: pod_id.to_string(),
            namespaces: NewNamespaces { net: true, ipc: true, uts: true, pid: true },
            hostname: Some(format!("host-{}", &pod_id[..pod_id.len().min(20)])),
            sysctls: vec![("net/ipv4/ip_unprivileged_port_start".into(), "80".into())],
            cgroup_parent: self.cgroup_parent.clone(),
            ipv6_dad: false,
        }
    }

    /// Mounts under this test's temp dir, deepest first.
    pub fn mounts_under_tmp(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = mountinfo::read_self()
            .unwrap()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(self.tmp.path()))
            .collect();
        found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        found
    }

    pub fn layout(&self) -> CgroupLayout {
        CgroupLayout::detect(Path::new(DEFAULT_ROOT)).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for mount in self.mounts_under_tmp() {
            let _ = mounts::unmount(&mount);
        }
        // The pod cgroups were removed by the monitor (or a test's stop); the parent is the
        // test's own. Remove whatever a failed test left below it (pod and container cgroups),
        // deepest first, then the parent.
        let Ok(layout) = CgroupLayout::detect(Path::new(DEFAULT_ROOT)) else { return };
        for dir in layout.dirs(&self.cgroup_parent) {
            remove_cgroup_tree(&dir);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            remove_cgroup_tree(&child.path());
        }
    }
    kill_cgroup_members(dir);
    let _ = std::fs::remove_dir(dir);
}

fn kill_cgroup_members(dir: &Path) {
    if let Ok(pids) = crius_sys::cgroups::procs(dir)
        && !pids.is_empty()
    {
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the pod when dropped, whatever happened in the test.
pub struct PodGuard<'a> {
    pub port: &'a MonitorPort,
    pub pod_id: String,
    pub resources: PodResources,
}

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        let _ = self.port.stop(&self.pod_id, &self.resources);
    }
}

/// Runs a command and returns its trimmed stdout; panics with its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn inode(path: impl AsRef<Path>) -> u64 {
    std::fs::metadata(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display())).ino()
}

/// The filesystem type mounted at `path`, if it is a mount point.
pub fn fs_type_at(path: &Path) -> Option<String> {
    let entries = mountinfo::read_self().unwrap();
    mountinfo::entry_at(path, &entries).map(|e| e.fs_type.clone())
}

/// Polls `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
