//! Ports for containers: the per-pod monitor's container operations, the exit records monitors
//! write, and the OCI runtime calls the daemon makes itself.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sandbox::model::ProcRef;

/// A configured OCI runtime (`[runtimes.NAME]` in crius.toml).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeHandler {
    pub name: String,
    /// The runtime binary (runc, crun).
    pub binary: String,
    /// The runtime's --root (its state directory).
    pub root: String,
    /// `--systemd-cgroup` (the systemd cgroup driver): the runtime makes each container's
    /// cgroup a systemd scope, and reads the spec's cgroupsPath as "slice:prefix:name".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_cgroup: bool,
    /// `create --no-pivot` (a rootfs on a ramdisk).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_pivot: bool,
    /// Extra global flags before the subcommand (`[runtimes.NAME.options] global_args`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global_args: Vec<String>,
}

/// What the monitor needs to create one container with the OCI runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLaunch {
    pub container_id: String,
    /// The OCI bundle: config.json, with the rootfs already mounted by the daemon.
    pub bundle: String,
    pub runtime: RuntimeHandler,
    /// The CRI log file (absolute), written by the monitor in the CRI log format; None: no log.
    pub log_path: Option<String>,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// The container's cgroup (relative to each hierarchy), for OOM-kill detection.
    pub cgroup: Option<String>,
}

/// How a container ended, recorded atomically by its monitor (`<state>/exits/<id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerExit {
    pub container_id: String,
    pub pid: i32,
    /// The exit status; 128 + signal for a process killed by a signal (as shells report it).
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub finished_at_ns: i64,
    pub oom_killed: bool,
    /// Set when the exit was not observed but inferred (for example the monitor died).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The monitor's side of a container's life.
pub trait ContainerMonitor: Send + Sync {
    /// `runtime create`, with the monitor holding the container's stdio and reaping it.
    /// Returns the container's init process.
    fn create_container(&self, pod_id: &str, launch: &ContainerLaunch) -> Result<ProcRef>;
    /// `runtime start`.
    fn start_container(&self, pod_id: &str, container_id: &str) -> Result<()>;
    /// Reopens the container's log file (after the kubelet rotated it).
    fn reopen_log(&self, pod_id: &str, container_id: &str) -> Result<()>;
    /// Sends `signal` to the process if it is still the one recorded; false: it is gone.
    fn signal(&self, process: &ProcRef, signal: i32) -> Result<bool>;
    /// Waits up to `timeout` for the process to exit (pidfd poll); true: it has exited (or was
    /// already gone).
    fn wait_exit(&self, process: &ProcRef, timeout: Duration) -> Result<bool>;
}

/// Exit records written by monitors, read and watched by the daemon.
pub trait ExitRecords: Send + Sync {
    fn read(&self, container_id: &str) -> Result<Option<ContainerExit>>;
    /// Idempotent.
    fn remove(&self, container_id: &str) -> Result<()>;
    /// Calls `on_exit` for every record written from now on (and those already there).
    fn watch(&self, on_exit: Box<dyn Fn(ContainerExit) + Send + Sync>) -> Result<()>;
}

/// What `exec_sync` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// Linux resources, as CRI's LinuxContainerResources (only what crius applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_bytes: i64,
    pub memory_swap_limit_bytes: i64,
    pub oom_score_adj: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// Page size (e.g. "2MB") -> limit in bytes.
    pub hugepage_limits: BTreeMap<String, u64>,
    /// cgroup v2 files -> values.
    pub unified: BTreeMap<String, String>,
}

/// Calls the daemon makes to the OCI runtime directly.
pub trait OciRuntime: Send + Sync {
    /// `runtime delete --force`; idempotent (an unknown container is done).
    fn delete(&self, runtime: &RuntimeHandler, container_id: &str) -> Result<()>;
    /// `runtime exec` with captured output (bounded), killed after `timeout`.
    fn exec_sync(
        &self,
        runtime: &RuntimeHandler,
        container_id: &str,
        command: &[String],
        timeout: Option<Duration>,
    ) -> Result<ExecOutput>;
    /// `runtime update --resources` with the OCI resources (built by `spec::resources`, as for
    /// CreateContainer); fields left out keep their current value.
    fn update_resources(
        &self,
        runtime: &RuntimeHandler,
        container_id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<()>;
}

/// Where a container's files are on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPaths {
    /// The OCI bundle directory (config.json, rootfs/).
    pub bundle: String,
    /// The mounted rootfs (an overlay of the image's layers and the container's writable layer).
    pub rootfs: String,
}

/// A container's filesystem on the host: its rootfs, bundle and what is read from them.
pub trait ContainerFs: Send + Sync {
    /// Creates the writable layer and mounts the overlay rootfs of `layers` (lowest first).
    /// Undo: `cleanup`.
    fn prepare(&self, container_id: &str, layers: &[std::path::PathBuf]) -> Result<ContainerPaths>;
    /// The rootfs's /etc/passwd and /etc/group ("" when absent), read without following links
    /// out of the rootfs.
    fn read_user_db(&self, paths: &ContainerPaths) -> Result<(String, String)>;
    /// Makes a writable directory of the container's own for each image volume (`volumes`:
    /// cleaned container paths), seeded with what the image has at that path, and returns their
    /// binds (to be relabelled: they are the container's own). They live with the container's writable layer. Undo: `remove_volumes` (`cleanup`
    /// removes them too).
    fn create_volumes(
        &self,
        container_id: &str,
        paths: &ContainerPaths,
        volumes: &[String],
    ) -> Result<Vec<crate::container::model::Mount>>;
    /// Removes what `create_volumes` made; idempotent.
    fn remove_volumes(&self, container_id: &str) -> Result<()>;
    /// Resolves CRI devices (or, with `all_host_devices`, every device of the host) to numbers.
    fn resolve_devices(
        &self,
        devices: &[crate::container::model::Device],
        all_host_devices: bool,
    ) -> Result<Vec<crate::spec::HostDevice>>;
    /// A localhost seccomp profile's content.
    fn read_seccomp_profile(&self, path: &str) -> Result<String>;
    /// Readies the host side of the CRI bind mounts: a missing host path is made a directory
    /// (mode 0755, parents too), as containerd and CRI-O do for the kubelet's untyped hostPath
    /// volumes, and the source of a propagating mount must be on a shared (Bidirectional) or a
    /// shared or slave (HostToContainer) mount. What it creates is kept, even on a later failure.
    fn prepare_mount_sources(&self, mounts: &[crate::container::model::Mount]) -> Result<()>;
    /// Gives `path`, and everything under it when it is a directory (symlinks themselves, never
    /// their targets), the SELinux file label `label`. A filesystem that keeps no labels is left
    /// as it is. No undo: a label is no resource, and containerd keeps them too.
    fn relabel(&self, path: &str, label: &str) -> Result<()>;
    /// Writes config.json into the bundle.
    fn write_spec(&self, paths: &ContainerPaths, spec_json: &[u8]) -> Result<()>;
    /// The bundle's config.json as written; None when it is gone (the bundle is volatile).
    fn read_spec(&self, bundle: &str) -> Result<Option<Vec<u8>>>;
    /// Creates the directory of a log file (the kubelet usually has).
    fn ensure_log_dir(&self, log_path: &str) -> Result<()>;
    /// Unmounts the rootfs and removes the bundle and the writable layer. Idempotent.
    fn cleanup(&self, container_id: &str) -> Result<()>;
}

/// Every port containers need, as one bundle the binary wires.
#[derive(Clone)]
pub struct ContainerPorts {
    pub state: std::sync::Arc<dyn super::StateStore<crate::container::model::ContainerRecord>>,
    pub fs: std::sync::Arc<dyn ContainerFs>,
    pub monitor: std::sync::Arc<dyn ContainerMonitor>,
    pub exits: std::sync::Arc<dyn ExitRecords>,
    pub oci: std::sync::Arc<dyn OciRuntime>,
    pub images: std::sync::Arc<dyn super::image::ImageStore>,
    pub apparmor: std::sync::Arc<dyn super::apparmor::AppArmor>,
}
