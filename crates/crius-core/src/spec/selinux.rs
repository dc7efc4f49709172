//! SELinux labels of a container: the process label (`process.selinuxLabel`) and the label its
//! files are mounted with (`linux.mountLabel`).

use oci_spec::runtime::Mount as OciMount;

use crate::container::model::{Mount, SelinuxOptions};
use crate::error::{Error, Result};
use crate::sandbox::model::PodRecord;

use super::HostCaps;
use super::mounts::{PodFiles, clean};

/// The parts of a label nobody gave: the container domain of the standard container-selinux
/// policy, as containerd and CRI-O use it.
const USER: &str = "system_u";
const ROLE: &str = "system_r";
const TYPE: &str = "container_t";
const FILE_ROLE: &str = "object_r";
const FILE_TYPE: &str = "container_file_t";
/// For a pod that has no level of its own (made while SELinux was off).
const LEVEL: &str = "s0";

/// (process label, mount label) of a container of `pod`. Without SELinux: none, whatever was
/// asked (containerd's label.InitLabels does the same; the caller logs it). With it: the pod's
/// level (its own or the one crius gave it, so every container of the pod shares it), and the
/// container's options over the pod's over the defaults, part by part. A privileged container
/// keeps the mount label but runs with no process label, as in containerd.
pub fn labels(
    pod: &PodRecord,
    container: Option<&SelinuxOptions>,
    privileged: bool,
    host: &HostCaps,
) -> Result<(Option<String>, Option<String>)> {
    if !host.selinux {
        return Ok((None, None));
    }
    let pod_options = pod.config.selinux.clone().unwrap_or_default();
    let container = container.cloned().unwrap_or_default();
    let pick = |field: &str, ours: &str, pods: &str, default: &str| -> Result<String> {
        let value = [ours, pods, default].into_iter().find(|v| !v.is_empty()).unwrap_or(default);
        if field != "level" && value.contains([':', ' ', '\t', '\n']) {
            return Err(Error::invalid(format!(
                "selinux_options.{field} {value:?} must be one word without ':' (the label is user:role:type:level)"
            )));
        }
        Ok(value.to_string())
    };
    let pod_level = pod.selinux_level.as_deref().unwrap_or(&pod_options.level);
    let user = pick("user", &container.user, &pod_options.user, USER)?;
    let role = pick("role", &container.role, &pod_options.role, ROLE)?;
    let kind = pick("type", &container.r#type, &pod_options.r#type, TYPE)?;
    let level = pick("level", &container.level, pod_level, LEVEL)?;
    let process = format!("{user}:{role}:{kind}:{level}");
    let mount = format!("{user}:{FILE_ROLE}:{FILE_TYPE}:{level}");
    Ok(((!privileged).then_some(process), Some(mount)))
}

/// Host paths that must carry the container's mount label before it starts, and that label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relabel {
    pub label: String,
    /// Cleaned, each once, in mount order.
    pub paths: Vec<String>,
}

/// Directories of the node whose relabelling would break the node (go-selinux's list, which
/// CRI-O and containerd refuse to relabel): a mount of them keeps its labels or is refused.
const NEVER_RELABELLED: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/passwd",
    "/etc/pki",
    "/etc/shadow",
    "/home",
    "/lib",
    "/lib64",
    "/media",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/lib",
    "/var/log",
];

/// What to relabel for a container with `mount_label` (None: SELinux is off, nothing), as
/// containerd does: the host paths of binds that ask for it (`selinux_relabel`, which the image
/// volumes crius makes always do), and the pod's hostname, hosts, resolv.conf and /dev/shm where
/// the spec mounts them (the host's /dev/shm never). A bind of a node directory that must keep its
/// labels is InvalidArgument, before anything is relabelled.
pub fn relabel(
    binds: &[Mount],
    pod_files: &PodFiles<'_>,
    spec_mounts: &[OciMount],
    mount_label: Option<&str>,
) -> Result<Option<Relabel>> {
    let Some(label) = mount_label else {
        return Ok(None);
    };
    let mut paths: Vec<String> = Vec::new();
    for bind in binds.iter().filter(|b| b.selinux_relabel) {
        let path = clean(&bind.host_path);
        if NEVER_RELABELLED.contains(&path.as_str()) {
            return Err(Error::invalid(format!(
                "mount of {} at {}: SELinux relabelling of {path} is not allowed (it would break the node); \
                 mount a directory of its own, or unset selinux_relabel",
                bind.host_path, bind.container_path
            )));
        }
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let pod_own = [Some(pod_files.hostname), Some(pod_files.hosts), Some(pod_files.resolv), pod_files.shm];
    for file in pod_own.into_iter().flatten() {
        let mounted = spec_mounts.iter().any(|m| m.source().as_ref().is_some_and(|s| s.as_os_str() == file));
        let path = clean(file);
        if mounted && !paths.contains(&path) {
            paths.push(path);
        }
    }
    Ok(Some(Relabel { label: label.to_string(), paths }))
}

/// Whether any part was given (an options message of empty strings asks for nothing).
pub fn asks_for_something(options: Option<&SelinuxOptions>) -> bool {
    options.is_some_and(|o| !(o.user.is_empty() && o.role.is_empty() && o.r#type.is_empty() && o.level.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::sandbox::model::{POD_RECORD_VERSION, PodConfig, PodResources, PodState};

    fn on() -> HostCaps {
        HostCaps { selinux: true, ..Default::default() }
    }

    fn pod(options: Option<SelinuxOptions>, level: Option<&str>) -> PodRecord {
        PodRecord {
            version: POD_RECORD_VERSION,
            id: "p".into(),
            config: PodConfig { selinux: options, ..Default::default() },
            created_at_ns: 0,
            state: PodState::Ready,
            resources: PodResources::default(),
            timeline: vec![],
            network: None,
            stopping: false,
            selinux_level: level.map(String::from),
        }
    }

    fn opts(user: &str, role: &str, kind: &str, level: &str) -> SelinuxOptions {
        SelinuxOptions { user: user.into(), role: role.into(), r#type: kind.into(), level: level.into() }
    }

    #[test]
    fn containers_share_their_pods_level() {
        let pod = pod(None, Some("s0:c12,c345"));
        let (process, mount) = labels(&pod, None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:container_t:s0:c12,c345"));
        assert_eq!(mount.as_deref(), Some("system_u:object_r:container_file_t:s0:c12,c345"));
        let empty = SelinuxOptions::default();
        assert_eq!(labels(&pod, Some(&empty), false, &on()).unwrap().0, process);
    }

    #[test]
    fn given_parts_override_the_pods_and_the_defaults() {
        let pod = pod(Some(opts("", "", "spc_t", "")), Some("s0:c1,c2"));
        let (process, _) = labels(&pod, None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:spc_t:s0:c1,c2"));
        let ours = opts("user_u", "user_r", "", "s0:c7,c8");
        let (process, mount) = labels(&pod, Some(&ours), false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("user_u:user_r:spc_t:s0:c7,c8"));
        assert_eq!(mount.as_deref(), Some("user_u:object_r:container_file_t:s0:c7,c8"));
        let bad = opts("a:b", "", "", "");
        assert_eq!(labels(&pod, Some(&bad), false, &on()).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_pod_without_a_level_falls_back_to_its_options_then_s0() {
        let (process, _) = labels(&pod(Some(opts("", "", "", "s0:c3,c4")), None), None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:container_t:s0:c3,c4"));
        let (process, _) = labels(&pod(None, None), None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:container_t:s0"));
    }

    #[test]
    fn privileged_keeps_only_the_mount_label() {
        let (process, mount) = labels(&pod(None, Some("s0:c1,c2")), None, true, &on()).unwrap();
        assert!(process.is_none());
        assert_eq!(mount.as_deref(), Some("system_u:object_r:container_file_t:s0:c1,c2"));
    }

    const LABEL: &str = "system_u:object_r:container_file_t:s0:c1,c2";
    const POD_FILES: PodFiles<'static> = PodFiles {
        hostname: "/run/p/hostname",
        hosts: "/run/p/hosts",
        resolv: "/run/p/resolv.conf",
        shm: Some("/run/p/shm"),
    };

    fn bind(host: &str, container: &str, relabel: bool) -> Mount {
        Mount {
            host_path: host.into(),
            container_path: container.into(),
            selinux_relabel: relabel,
            ..Default::default()
        }
    }

    fn spec_mount(source: &str, destination: &str) -> OciMount {
        let mut m = OciMount::default();
        m.set_source(Some(source.into())).set_destination(destination.into());
        m
    }

    fn mounted_pod_files() -> Vec<OciMount> {
        vec![
            spec_mount("/run/p/hostname", "/etc/hostname"),
            spec_mount("/run/p/hosts", "/etc/hosts"),
            spec_mount("/run/p/resolv.conf", "/etc/resolv.conf"),
            spec_mount("/run/p/shm", "/dev/shm"),
        ]
    }

    #[test]
    fn relabels_binds_that_ask_and_the_pods_files() {
        let binds = [bind("/data/a/", "/a", true), bind("/data/b", "/b", false), bind("/data//a", "/a2", true)];
        let got = relabel(&binds, &POD_FILES, &mounted_pod_files(), Some(LABEL)).unwrap().unwrap();
        assert_eq!(got.label, LABEL);
        assert_eq!(got.paths, ["/data/a", "/run/p/hostname", "/run/p/hosts", "/run/p/resolv.conf", "/run/p/shm"]);
    }

    #[test]
    fn a_pod_file_the_container_replaces_is_not_relabelled() {
        // The container mounts its own resolv.conf, and the pod is on the host's IPC (no shm).
        let mut spec = mounted_pod_files();
        spec.retain(|m| m.destination().as_os_str() != "/etc/resolv.conf");
        spec.push(spec_mount("/srv/resolv.conf", "/etc/resolv.conf"));
        let host_ipc = PodFiles { shm: None, ..POD_FILES };
        let got = relabel(&[bind("/srv/resolv.conf", "/etc/resolv.conf", false)], &host_ipc, &spec, Some(LABEL));
        assert_eq!(got.unwrap().unwrap().paths, ["/run/p/hostname", "/run/p/hosts"]);
    }

    #[test]
    fn node_directories_are_never_relabelled() {
        for host in ["/", "/etc", "/usr/", "/var/lib", "/home"] {
            let err = relabel(&[bind(host, "/x", true)], &POD_FILES, &[], Some(LABEL)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{host}");
            assert!(err.to_string().contains("not allowed"), "{err}");
        }
        // Asked for without relabelling, they are mounted as they are.
        assert!(relabel(&[bind("/etc", "/x", false)], &POD_FILES, &[], Some(LABEL)).is_ok());
        // Below them is the node's data, relabelled as asked.
        let got = relabel(&[bind("/var/lib/app", "/x", true)], &POD_FILES, &[], Some(LABEL)).unwrap().unwrap();
        assert_eq!(got.paths, ["/var/lib/app"]);
    }

    #[test]
    fn nothing_is_relabelled_without_selinux() {
        let binds = [bind("/etc", "/x", true), bind("/data", "/d", true)];
        assert_eq!(relabel(&binds, &POD_FILES, &mounted_pod_files(), None).unwrap(), None);
    }

    #[test]
    fn no_labels_without_selinux() {
        let pod = pod(Some(opts("u", "r", "t", "s0:c1,c2")), Some("s0:c1,c2"));
        let ours = opts("", "", "", "s0:c5,c6");
        assert_eq!(labels(&pod, Some(&ours), false, &HostCaps::default()).unwrap(), (None, None));
        assert!(asks_for_something(Some(&ours)));
        assert!(!asks_for_something(Some(&SelinuxOptions::default())) && !asks_for_something(None));
    }
}
