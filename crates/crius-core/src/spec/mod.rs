//! The OCI runtime spec of a container, built from its CRI config, its image's config, its pod
//! and the host's facts. Pure functions: everything outside (the rootfs's /etc/passwd, device
//! numbers, host capabilities) is read by the caller and passed in, so these are unit-tested
//! without root and without depending on the machine running them.

use std::collections::BTreeMap;

use oci_spec::runtime::{Linux, LinuxCapabilities, Process, Root, Spec, User};
use serde::{Deserialize, Serialize};

use crate::container::model::{ContainerConfig, ResolvedUser};
use crate::error::{Error, Result};
use crate::image::ImageConfigInfo;
use crate::sandbox::model::PodRecord;

pub mod annotations;
pub mod apparmor;
pub mod capabilities;
pub mod devices;
pub mod mounts;
pub mod namespaces;
pub mod passwd;
pub mod process;
pub mod resources;
pub mod seccomp;
pub mod seccomp_default;
pub mod security;
pub mod selinux;
pub mod signal;
pub mod user;

#[cfg(test)]
mod tests;

/// The OCI runtime-spec version the built specs declare (what runc 1.1 and crun implement).
pub const OCI_VERSION: &str = "1.0.2-dev";

/// Facts of the host, detected once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCaps {
    pub cgroup_v2: bool,
    /// The capabilities of the daemon's bounding set ("CAP_CHOWN", ...): "ALL" means these.
    pub bounding_capabilities: Vec<String>,
    pub seccomp: bool,
    /// AppArmor is enabled (`/sys/module/apparmor/parameters/enabled` is Y).
    pub apparmor: bool,
    /// SELinux is enabled (`/sys/fs/selinux/enforce` exists: enforcing or permissive).
    pub selinux: bool,
    pub swap: bool,
    /// Hugepage sizes the kernel offers ("2MB", "1GB").
    pub hugepage_sizes: Vec<String>,
    /// The lowest oom_score_adj crius may set (its own, where it lacks CAP_SYS_RESOURCE).
    pub min_oom_score_adj: i64,
    /// The cgroup driver: true for systemd (cgroupsPath "slice:prefix:name").
    pub systemd_cgroup: bool,
}

/// A host device, as the caller found it (stat of host_path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDevice {
    pub host_path: String,
    pub container_path: String,
    /// 'c' or 'b'.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub permissions: String,
}

/// Everything a spec is built from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub container_id: &'a str,
    pub config: &'a ContainerConfig,
    pub pod: &'a PodRecord,
    pub image: &'a ImageConfigInfo,
    /// The image name the container was created from (for annotations).
    pub image_name: &'a str,
    /// Where the container's rootfs is mounted (the bundle's rootfs).
    pub rootfs: &'a str,
    /// The contents of the container's /etc/passwd and /etc/group ("" where absent).
    pub passwd: &'a str,
    pub group: &'a str,
    /// The pod's files: hostname, hosts, resolv.conf, and its /dev/shm (None for host IPC).
    pub pod_hostname_file: &'a str,
    pub pod_hosts_file: &'a str,
    pub pod_resolv_file: &'a str,
    pub pod_shm: Option<&'a str>,
    /// The binds of the image's volumes (writable, private), each of a directory of its own that
    /// the caller made; see `mounts::image_volumes`.
    pub image_volumes: &'a [crate::container::model::Mount],
    /// The CRI devices, resolved; with privileged, every host device.
    pub devices: &'a [HostDevice],
    /// The PID namespace of the TARGET container (its /proc/PID/ns/pid), when pid mode is TARGET.
    pub target_pid_ns: Option<&'a str>,
    /// Annotations crius adds (sandbox id, container type, ...) are computed; these are extra.
    pub extra_annotations: &'a BTreeMap<String, String>,
    pub host: &'a HostCaps,
    /// The contents of the Localhost seccomp profile file (`config.security.seccomp.localhost_ref`),
    /// read by the caller; required when that profile type is asked for.
    pub seccomp_localhost_json: Option<&'a str>,
}

/// A built spec and what was resolved on the way that the caller records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltSpec {
    pub spec: Spec,
    pub user: ResolvedUser,
    /// From the image's STOPSIGNAL; SIGTERM when it has none.
    pub stop_signal: i32,
    /// Host paths to give the mount label before the container starts (None without SELinux).
    pub relabel: Option<selinux::Relabel>,
}

/// Builds the OCI spec of a container the way containerd's CRI plugin does for the kubelet
/// (differences are noted where they are made). Pure: everything outside comes in `input`.
pub fn build_spec(input: &SpecInput<'_>) -> Result<BuiltSpec> {
    let config = input.config;
    let sec = &config.security;
    let host = input.host;
    let image_name = input.image_name;

    security::check_privileged(sec, input.pod)?;
    let user = user::resolve_user(sec, &input.image.user, image_name, input.passwd, input.group)?;
    let args = process::args(config, input.image, image_name)?;
    let env = process::env(config, input.image, &input.pod.config.hostname);
    let cwd = process::cwd(config, input.image, image_name)?;
    let stop_signal = signal::stop_signal(&input.image.stop_signal, image_name)?;

    let caps = capabilities::container_set(sec, host)?;
    let pod_files = mounts::PodFiles {
        hostname: input.pod_hostname_file,
        hosts: input.pod_hosts_file,
        resolv: input.pod_resolv_file,
        shm: input.pod_shm,
    };
    // The image's volumes after the CRI mounts: as containerd, they stay writable under a
    // read-only rootfs, which is what images that declare them expect.
    let binds: Vec<_> = config.mounts.iter().chain(input.image_volumes).cloned().collect();
    let mounts = mounts::mounts(&binds, pod_files, sec.readonly_rootfs, sec.privileged)?;
    let namespaces = namespaces::namespaces(sec, input.pod, input.target_pid_ns, host)?;
    let (device_nodes, device_rules) = devices::devices(input.devices, sec.privileged)?;
    let resources = resources::linux_resources(config.resources.as_ref(), device_rules, host)?;
    let oom_score_adj = resources::oom_score_adj(config.resources.as_ref(), host)?;
    let cgroups_path = resources::cgroups_path(&input.pod.config.cgroup_parent, input.container_id, host)?;
    let (masked, readonly) = security::masked_and_readonly(sec)?;
    let seccomp = seccomp::seccomp(
        &sec.seccomp,
        sec.privileged,
        &caps,
        input.seccomp_localhost_json,
        host,
        std::env::consts::ARCH,
    )?;
    let apparmor = apparmor::select(&sec.apparmor, sec.privileged, host.apparmor)?;
    let (process_label, mount_label) = selinux::labels(input.pod, sec.selinux.as_ref(), sec.privileged, host)?;
    let relabel = selinux::relabel(&binds, &pod_files, &mounts.mounts, mount_label.as_deref())?;
    let annotations = annotations::annotations(config, input.pod, image_name, input.extra_annotations);

    let mut oci_user = User::default();
    oci_user.set_uid(user.uid).set_gid(user.gid).set_additional_gids(Some(user.additional_gids.clone()));
    let capabilities: LinuxCapabilities = capabilities::to_oci(&caps);
    let mut process = Process::default();
    process
        .set_terminal(Some(config.tty))
        .set_user(oci_user)
        .set_args(Some(args))
        .set_env(Some(env))
        .set_cwd(cwd.into())
        .set_capabilities(Some(capabilities))
        // containerd's CRI spec drops the default rlimits: the container inherits the runtime's.
        .set_rlimits(None)
        .set_no_new_privileges(Some(sec.no_new_privs))
        .set_apparmor_profile(apparmor.map(|p| p.name().to_string()))
        .set_oom_score_adj(oom_score_adj)
        .set_selinux_label(process_label);

    let mut root = Root::default();
    root.set_path(input.rootfs.into()).set_readonly(Some(sec.readonly_rootfs));

    let mut linux = Linux::default();
    linux
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_resources(Some(resources))
        .set_cgroups_path(Some(cgroups_path.into()))
        .set_namespaces(Some(namespaces))
        .set_devices(Some(device_nodes))
        .set_seccomp(seccomp)
        .set_rootfs_propagation(mounts.rootfs_propagation)
        .set_masked_paths((!masked.is_empty()).then_some(masked))
        .set_readonly_paths((!readonly.is_empty()).then_some(readonly))
        .set_mount_label(mount_label);

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string())
        .set_root(Some(root))
        .set_mounts(Some(mounts.mounts))
        .set_process(Some(process))
        // The container joins its pod's UTS namespace: runc refuses a hostname without its own.
        .set_hostname(None)
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(Some(annotations))
        .set_linux(Some(linux));
    Ok(BuiltSpec { spec, user, stop_signal, relabel })
}

/// The spec as the bundle's config.json.
pub fn to_json(spec: &Spec) -> Result<String> {
    serde_json::to_string_pretty(spec).map_err(|e| Error::internal("serializing the OCI spec", e))
}
