//! The container's namespaces, as containerd's `WithPodNamespaces`: a new mount namespace; the
//! pod's network, IPC and UTS namespaces (where the pod has none pinned it uses the host's, and
//! an absent entry means exactly that); the PID namespace per the container's mode; a cgroup
//! namespace on cgroup v2 unless privileged.

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::container::model::SecurityContext;
use crate::error::{Error, Result};
use crate::sandbox::model::{NamespaceMode, PodRecord};

use super::HostCaps;

pub fn namespaces(
    security: &SecurityContext,
    pod: &PodRecord,
    target_pid_ns: Option<&str>,
    host: &HostCaps,
) -> Result<Vec<LinuxNamespace>> {
    let pinned = &pod.resources.namespaces;
    let mut out = vec![ns(LinuxNamespaceType::Mount, None)];
    for (typ, path) in [
        (LinuxNamespaceType::Network, &pinned.net),
        (LinuxNamespaceType::Ipc, &pinned.ipc),
        (LinuxNamespaceType::Uts, &pinned.uts),
    ] {
        if let Some(path) = path {
            out.push(ns(typ, Some(path.as_str())));
        }
    }
    let pod_pid_mode = pod.config.namespaces.pid;
    match security.pid_mode {
        NamespaceMode::Pod => match (&pinned.pid, pod_pid_mode) {
            (Some(path), _) => out.push(ns(LinuxNamespaceType::Pid, Some(path.as_str()))),
            // containerd joins the sandbox's PID namespace, which for a host-PID pod is the host's.
            (None, NamespaceMode::Node) => {}
            (None, _) => {
                return Err(Error::invalid(format!(
                    "pid mode POD: pod {} has no shared PID namespace (its pid mode is {:?}); \
                     use pid mode CONTAINER for this container",
                    pod.name(),
                    pod_pid_mode
                )));
            }
        },
        NamespaceMode::Container => out.push(ns(LinuxNamespaceType::Pid, None)),
        NamespaceMode::Node => {
            // containerd joins the sandbox's PID namespace, so a container only gets the host's
            // when its pod has it: never more than the pod was given.
            if pod_pid_mode != NamespaceMode::Node {
                return Err(Error::invalid(format!(
                    "pid mode NODE: pod {} does not use the host PID namespace; create the pod with pid mode NODE",
                    pod.name()
                )));
            }
        }
        NamespaceMode::Target => {
            let path = target_pid_ns.ok_or_else(|| {
                Error::invalid(format!(
                    "pid mode TARGET: the PID namespace of target container {:?} was not found; is it running?",
                    security.target_id
                ))
            })?;
            out.push(ns(LinuxNamespaceType::Pid, Some(path)));
        }
    }
    // cgroupns hides the host's cgroup tree; kept off on v1 and for privileged containers for
    // compatibility, as containerd does (KEP 20191118-cgroups-v2).
    if host.cgroup_v2 && !security.privileged {
        out.push(ns(LinuxNamespaceType::Cgroup, None));
    }
    Ok(out)
}

fn ns(typ: LinuxNamespaceType, path: Option<&str>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ).set_path(path.map(Into::into));
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::model::{NamespacePaths, POD_RECORD_VERSION, PodConfig, PodResources, PodState};

    fn pod(pid_mode: NamespaceMode, paths: NamespacePaths) -> PodRecord {
        let mut config = PodConfig::default();
        config.namespaces.pid = pid_mode;
        PodRecord {
            version: POD_RECORD_VERSION,
            id: "p1".into(),
            config,
            created_at_ns: 0,
            state: PodState::Ready,
            resources: PodResources { namespaces: paths, ..Default::default() },
            timeline: vec![],
            network: None,
            stopping: false,
            selinux_level: None,
        }
    }

    fn all_pinned() -> NamespacePaths {
        NamespacePaths {
            net: Some("/run/crius/ns/net/p1".into()),
            ipc: Some("/run/crius/ns/ipc/p1".into()),
            uts: Some("/run/crius/ns/uts/p1".into()),
            pid: Some("/run/crius/ns/pid/p1".into()),
            net_alias: None,
        }
    }

    fn summary(v: &[LinuxNamespace]) -> Vec<(String, Option<String>)> {
        v.iter().map(|n| (n.typ().to_string(), n.path().as_ref().map(|p| p.display().to_string()))).collect()
    }

    fn sc(mode: NamespaceMode) -> SecurityContext {
        SecurityContext { pid_mode: mode, ..Default::default() }
    }

    #[test]
    fn joins_the_pods_namespaces() {
        let v = namespaces(&sc(NamespaceMode::Pod), &pod(NamespaceMode::Pod, all_pinned()), None, &HostCaps::default());
        assert_eq!(
            summary(&v.unwrap()),
            [
                ("mnt".into(), None),
                ("net".into(), Some("/run/crius/ns/net/p1".into())),
                ("ipc".into(), Some("/run/crius/ns/ipc/p1".into())),
                ("uts".into(), Some("/run/crius/ns/uts/p1".into())),
                ("pid".into(), Some("/run/crius/ns/pid/p1".into())),
            ]
        );
    }

    #[test]
    fn host_namespaces_have_no_entry() {
        let v = namespaces(
            &sc(NamespaceMode::Node),
            &pod(NamespaceMode::Node, NamespacePaths::default()),
            None,
            &HostCaps::default(),
        )
        .unwrap();
        assert_eq!(summary(&v), [("mnt".to_string(), None)]);
        // POD mode in a host-PID pod: the host's, as containerd.
        let v = namespaces(
            &sc(NamespaceMode::Pod),
            &pod(NamespaceMode::Node, NamespacePaths::default()),
            None,
            &HostCaps::default(),
        )
        .unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn pid_modes() {
        let mut paths = all_pinned();
        paths.pid = None;
        let p = pod(NamespaceMode::Container, paths);
        let v = namespaces(&sc(NamespaceMode::Container), &p, None, &HostCaps::default()).unwrap();
        assert!(summary(&v).contains(&("pid".into(), None)));
        let err = namespaces(&sc(NamespaceMode::Pod), &p, None, &HostCaps::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("CONTAINER"), "{err}");
        let err = namespaces(&sc(NamespaceMode::Node), &p, None, &HostCaps::default()).unwrap_err();
        assert!(err.to_string().contains("NODE"), "{err}");
        let v = namespaces(&sc(NamespaceMode::Target), &p, Some("/proc/42/ns/pid"), &HostCaps::default()).unwrap();
        assert!(summary(&v).contains(&("pid".into(), Some("/proc/42/ns/pid".into()))));
        let t = SecurityContext { pid_mode: NamespaceMode::Target, target_id: "abc".into(), ..Default::default() };
        let err = namespaces(&t, &p, None, &HostCaps::default()).unwrap_err();
        assert!(err.to_string().contains("\"abc\""), "{err}");
    }

    #[test]
    fn cgroup_namespace_on_v2_unless_privileged() {
        let v2 = HostCaps { cgroup_v2: true, ..Default::default() };
        let p = pod(NamespaceMode::Pod, all_pinned());
        let v = namespaces(&sc(NamespaceMode::Pod), &p, None, &v2).unwrap();
        assert_eq!(v.last().map(|n| n.typ()), Some(LinuxNamespaceType::Cgroup));
        let privileged = SecurityContext { privileged: true, ..Default::default() };
        let v = namespaces(&privileged, &p, None, &v2).unwrap();
        assert!(v.iter().all(|n| n.typ() != LinuxNamespaceType::Cgroup));
        let v = namespaces(&sc(NamespaceMode::Pod), &p, None, &HostCaps::default()).unwrap();
        assert!(v.iter().all(|n| n.typ() != LinuxNamespaceType::Cgroup));
    }
}
