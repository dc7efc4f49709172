//! One trait per outside thing the domain needs. Adapters (crius-sys, crius-monitor, the binary's
//! state store) implement them; unit tests use the fakes in `ports::fake`.
//!
//! The domain is synchronous: the gRPC layer runs each mutating call on a blocking thread, where
//! it completes (or rolls back) even when the client gives up.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sandbox::model::{NewNamespaces, PodRecord, PodResources, ProcRef};

pub mod apparmor;
pub mod container;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
#[cfg(any(test, feature = "fakes"))]
pub mod fake_container;
pub mod image;
pub mod stats;

pub use image::ImageStore;

/// Where records live (pods/<id>/state.json, containers/<id>/state.json), written atomically.
pub trait StateStore<R>: Send + Sync {
    /// Durable: on disk (fsynced) when this returns.
    fn save(&self, record: &R) -> Result<()>;
    /// Survives a crash of crius (kill -9) but maybe not a power loss: for intermediate states
    /// whose resources a reboot wipes anyway (the intent record of a creation, its pids).
    fn save_volatile(&self, record: &R) -> Result<()> {
        self.save(record)
    }
    /// Like `save` (the record's place, replaced atomically, seen after a kill -9) without the
    /// disk flushes, so a power loss may lose the change: for records whose every state a
    /// reboot makes moot (a container's: after it, every container is exited, and one whose
    /// record was lost is no more than a directory the next load removes).
    fn save_unflushed(&self, record: &R) -> Result<()> {
        self.save(record)
    }
    /// Replaces the record just made durable by `save` with one that only adds to what describes
    /// it (its timeline, completed with the step of that very save), without a disk flush: a
    /// restart after kill -9 sees it; a power loss may lose it, and then leaves the record as
    /// `save` wrote it, never a torn one. The next `save` supersedes it.
    fn amend(&self, record: &R) -> Result<()> {
        self.save(record)
    }
    /// Every record that can be read; an unreadable one is reported by the adapter and skipped.
    fn load_all(&self) -> Result<Vec<R>>;
    /// Removes the record and its directory. Idempotent: a missing record is success.
    fn delete(&self, id: &str) -> Result<()>;
}

pub type PodStateStore = dyn StateStore<PodRecord>;

/// The per-pod files the containers will mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFileSet {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
}

/// Where a pod's files are on the host, for its containers' mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFilePaths {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
    pub shm: String,
}

/// The pod's directories, files and /dev/shm on the host.
pub trait PodFiles: Send + Sync {
    fn paths(&self, pod_id: &str) -> PodFilePaths;
    /// Creates the pod's directories and writes its files. Undo: `remove`.
    fn create(&self, pod_id: &str, files: &SandboxFileSet) -> Result<()>;
    /// Mounts the pod's /dev/shm tmpfs. Undo: `unmount_shm`.
    /// Rewrites the pod's /etc/hosts (once the pod has its IPs).
    fn write_hosts(&self, pod_id: &str, hosts: &str) -> Result<()>;
    fn mount_shm(&self, pod_id: &str, size_bytes: u64) -> Result<()>;
    /// Idempotent.
    fn unmount_shm(&self, pod_id: &str) -> Result<()>;
    /// Removes every directory of the pod. Idempotent.
    fn remove(&self, pod_id: &str) -> Result<()>;
    /// Files that pods inherit from the node, read when a pod starts (they can change).
    fn host_resolv_conf(&self) -> Result<String>;
    fn host_hosts(&self) -> Result<String>;
    fn host_hostname(&self) -> Result<String>;
}

/// What the per-pod monitor is asked to set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorSpec {
    pub pod_id: String,
    pub namespaces: NewNamespaces,
    /// Set in a new UTS namespace.
    pub hostname: Option<String>,
    /// (path under /proc/sys, value), applied inside the pod's namespaces.
    pub sysctls: Vec<(String, String)>,
    /// The cgroup parent from the pod config ("" places the pod init nowhere special).
    pub cgroup_parent: String,
    /// IPv6 duplicate address detection in a new netns (off by default: it delays pod start).
    pub ipv6_dad: bool,
}

/// A started monitor waiting for the daemon to record it. Dropping it without `commit` makes the
/// monitor undo everything it made, so a daemon that dies before recording the pod leaks nothing.
pub trait PendingMonitor: Send {
    fn commit(self: Box<Self>) -> Result<()>;
}

/// The per-pod monitor process, its pod init, the pinned namespaces and the pod cgroup.
pub trait PodMonitor: Send + Sync {
    /// Paths the pod will use (pinned namespaces, cgroup), known before anything is made so they
    /// can be recorded first.
    fn plan(&self, spec: &MonitorSpec) -> Result<PodResources>;
    /// Starts the monitor; returns the planned resources with the monitor and init processes.
    fn start(&self, spec: &MonitorSpec) -> Result<(PodResources, Box<dyn PendingMonitor>)>;
    /// Stops the monitor and the pod init, unpins the namespaces and removes the cgroup.
    /// Idempotent: whatever is already gone counts as done.
    fn stop(&self, pod_id: &str, resources: &PodResources) -> Result<()>;
    /// Whether the process is still the one that was started.
    fn is_alive(&self, process: &ProcRef) -> bool;
    /// Calls `on_exit` once when the process exits (at once if it is already gone).
    fn watch_exit(&self, process: ProcRef, on_exit: Box<dyn FnOnce() + Send>);
}

/// What happens to pods that no port call shows, for whoever counts it (the binary's metrics).
pub trait PodObserver: Send + Sync {
    /// A ready pod's init exited (it goes with the pod's monitor) without a Stop asking for it,
    /// seen while crius ran: once per pod.
    fn pod_monitor_exited(&self, pod_id: &str);
}

/// Every port, as one bundle the binary wires.
#[derive(Clone)]
pub struct Ports {
    pub pod_state: Arc<PodStateStore>,
    pub pod_files: Arc<dyn PodFiles>,
    pub monitor: Arc<dyn PodMonitor>,
    pub network: Arc<dyn network::PodNetwork>,
    pub host_ports: Arc<dyn network::HostPorts>,
}

#[cfg(any(test, feature = "fakes"))]
pub mod fake_network;
pub mod network;
