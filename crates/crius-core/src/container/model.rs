//! Container types: the config as crius understands it (converted from CRI at the edge), and the
//! record persisted for each container.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ports::container::{ContainerExit, Resources, RuntimeHandler};
use crate::sandbox::model::{NamespaceMode, ProcRef};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetadata {
    pub name: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    #[default]
    Private,
    HostToContainer,
    Bidirectional,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
    pub selinux_relabel: bool,
    pub propagation: Propagation,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub container_path: String,
    pub host_path: String,
    /// Cgroup permissions: any of "r", "w", "m".
    pub permissions: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// Nothing asked: no seccomp filter (as containerd; the kubelet asks RuntimeDefault explicitly
    /// when seccompDefault is on), no AppArmor profile.
    #[default]
    Unset,
    RuntimeDefault,
    Unconfined,
    Localhost,
}

/// A seccomp or AppArmor profile request (CRI SecurityProfile, with the deprecated string forms
/// already folded in at the edge).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityProfile {
    pub kind: ProfileKind,
    /// For Localhost: the profile file (seccomp) or name (AppArmor).
    pub localhost_ref: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelinuxOptions {
    pub user: String,
    pub role: String,
    pub r#type: String,
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContext {
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub privileged: bool,
    /// The PID namespace mode (POD, CONTAINER, NODE or TARGET with `target_id`).
    pub pid_mode: NamespaceMode,
    pub target_id: String,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_username: String,
    pub readonly_rootfs: bool,
    pub supplemental_groups: Vec<i64>,
    pub no_new_privs: bool,
    /// None: the defaults; Some(empty): nothing masked / read-only.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub seccomp: SecurityProfile,
    pub apparmor: SecurityProfile,
    pub selinux: Option<SelinuxOptions>,
}

/// A container's configuration: what CreateContainer asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub metadata: ContainerMetadata,
    /// The image as the request named it.
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    /// In order; a later entry with the same key wins.
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Relative to the pod's log directory.
    pub log_path: String,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub resources: Option<Resources>,
    pub security: SecurityContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// CreateContainer is under way (or was, when crius crashed): recovery undoes it.
    Creating,
    Created,
    Running,
    Exited,
}

/// The persisted record of one container (containers/<id>/state.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub version: u32,
    pub id: String,
    pub pod_id: String,
    pub config: ContainerConfig,
    /// The image id (config digest) and the name it was found by.
    pub image_id: String,
    pub image_ref: String,
    pub runtime: RuntimeHandler,
    pub state: ContainerState,
    pub created_at_ns: i64,
    pub started_at_ns: i64,
    pub process: Option<ProcRef>,
    pub exit: Option<ContainerExit>,
    /// Absolute path of the CRI log file, if the pod has a log directory.
    pub log_path: Option<String>,
    /// The user the process runs as (uid, gid, supplemental groups) as resolved at create.
    pub user: Option<ResolvedUser>,
    /// Resources as last applied (create or UpdateContainerResources).
    pub resources: Option<Resources>,
    /// The signal Stop sends first (the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: i32,
    /// The OCI bundle and mounted rootfs.
    pub bundle: String,
    /// How long each step of CreateContainer took, then those of StartContainer.
    pub timeline: Vec<crate::sandbox::model::StepTiming>,
}

/// The process identity a container runs with, resolved against its own /etc/passwd and /etc/group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub username: Option<String>,
}

pub const CONTAINER_RECORD_VERSION: u32 = 1;

impl ContainerRecord {
    /// The reserved name, as containerd builds it.
    pub fn name(&self, pod: &crate::sandbox::model::PodMetadata) -> String {
        container_name(&self.config.metadata, pod)
    }
}

pub fn container_name(md: &ContainerMetadata, pod: &crate::sandbox::model::PodMetadata) -> String {
    format!("{}_{}_{}_{}_{}", md.name, pod.name, pod.namespace, pod.uid, md.attempt)
}
