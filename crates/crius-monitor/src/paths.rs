//! Where a pod's monitor puts things. One definition, used by the daemon's `plan`/`stop` and by
//! the monitor itself, so both always agree.

use std::path::{Path, PathBuf};

use crius_core::sandbox::model::NamespacePaths;
use crius_sys::namespaces::{NamespaceSet, NsKind};

use crate::error::{MonitorError, Result};

/// The paths of one pod under crius's run dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPaths {
    pub pod_id: String,
    /// <run_dir>/ns: made a shared mount point so unmounted pins propagate.
    pub ns_root: PathBuf,
    /// <run_dir>/pods/<id>
    pub pod_dir: PathBuf,
    /// <run_dir>/pods/<id>/monitor.sock
    pub socket: PathBuf,
    /// <run_dir>/pods/<id>/monitor.log
    pub log: PathBuf,
    /// <run_dir>/pods/<id>/containers: per-container files of the monitor (pid file, runtime
    /// log, console socket).
    pub containers: PathBuf,
    /// <run_dir>/exits: one record per container exit, for every pod.
    pub exits: PathBuf,
    /// The extra pin of the network namespace, <netns_dir>/crius-<id>, if configured.
    pub netns_link: Option<PathBuf>,
}

impl PodPaths {
    pub fn new(run_dir: &Path, netns_dir: Option<&Path>, pod_id: &str) -> Result<Self> {
        validate_pod_id(pod_id)?;
        let pod_dir = run_dir.join("pods").join(pod_id);
        Ok(PodPaths {
            pod_id: pod_id.to_string(),
            ns_root: run_dir.join("ns"),
            socket: pod_dir.join("monitor.sock"),
            log: pod_dir.join("monitor.log"),
            containers: pod_dir.join("containers"),
            exits: run_dir.join("exits"),
            pod_dir,
            netns_link: netns_dir.map(|d| d.join(format!("crius-{pod_id}"))),
        })
    }

    /// <run_dir>/ns/<kind>/<id>
    pub fn pin(&self, kind: NsKind) -> PathBuf {
        self.ns_root.join(kind.name()).join(&self.pod_id)
    }

    /// Every pin this pod can have, whatever it asked for (for an idempotent teardown).
    pub fn all_pins(&self) -> Vec<PathBuf> {
        NsKind::ALL.iter().map(|k| self.pin(*k)).chain(self.netns_link.clone()).collect()
    }

    /// The pins of the namespaces in `ns`, as recorded for the pod.
    pub fn namespace_paths(&self, ns: NamespaceSet) -> NamespacePaths {
        let pin = |kind: NsKind| ns.contains(kind).then(|| self.pin(kind).to_string_lossy().into_owned());
        let net_alias =
            self.netns_link.as_ref().filter(|_| ns.contains(NsKind::Net)).map(|p| p.to_string_lossy().into_owned());
        NamespacePaths {
            net: pin(NsKind::Net),
            ipc: pin(NsKind::Ipc),
            uts: pin(NsKind::Uts),
            pid: pin(NsKind::Pid),
            net_alias,
        }
    }

    /// Whether `path` (from a recorded pod) has the shape of one of this pod's pins under some
    /// run dir, `.../ns/<kind>/<id>`. A record is data from disk: this keeps a corrupted one from
    /// making crius unmount an arbitrary path.
    pub fn looks_like_pin(&self, kind: NsKind, path: &Path) -> bool {
        path.is_absolute()
            && path.file_name().is_some_and(|n| n == self.pod_id.as_str())
            && path.parent().and_then(Path::file_name).is_some_and(|n| n == kind.name())
            && path.parent().and_then(Path::parent).and_then(Path::file_name).is_some_and(|n| n == "ns")
            && !path.components().any(|c| matches!(c, std::path::Component::ParentDir))
    }
}

/// Pod ids end up in paths and in a cgroup name: one safe path component.
pub fn validate_pod_id(id: &str) -> Result<()> {
    validate_id("pod", id)
}

/// Ids (of a pod, a container) end up in paths, cgroup names and runtime argv: one safe path
/// component that cannot be read as a flag.
pub fn validate_id(kind: &'static str, id: &str) -> Result<()> {
    let invalid = |reason| Err(MonitorError::InvalidId { kind, id: id.to_string(), reason });
    if id.is_empty() || id.len() > 128 {
        return invalid("it must have 1 to 128 characters");
    }
    if id.starts_with('.') || id.starts_with('-') {
        return invalid("it cannot start with '.' or '-'");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return invalid("only letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

pub fn namespace_set(ns: &crius_core::sandbox::model::NewNamespaces) -> NamespaceSet {
    NamespaceSet { net: ns.net, ipc: ns.ipc, uts: ns.uts, pid: ns.pid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_pod() {
        let p = PodPaths::new(Path::new("/run/crius"), Some(Path::new("/run/netns")), "abc").unwrap();
        assert_eq!(p.pin(NsKind::Net), Path::new("/run/crius/ns/net/abc"));
        assert_eq!(p.pin(NsKind::Pid), Path::new("/run/crius/ns/pid/abc"));
        assert_eq!(p.socket, Path::new("/run/crius/pods/abc/monitor.sock"));
        assert_eq!(p.containers, Path::new("/run/crius/pods/abc/containers"));
        assert_eq!(p.exits, Path::new("/run/crius/exits"));
        assert_eq!(p.netns_link.as_deref(), Some(Path::new("/run/netns/crius-abc")));
        assert_eq!(p.all_pins().len(), 5);
        let ns = p.namespace_paths(NamespaceSet { net: true, pid: true, ..Default::default() });
        assert_eq!(ns.net.as_deref(), Some("/run/crius/ns/net/abc"));
        assert_eq!(ns.ipc, None);
        assert_eq!(ns.uts, None);
        assert_eq!(ns.pid.as_deref(), Some("/run/crius/ns/pid/abc"));
    }

    #[test]
    fn pod_ids_are_one_safe_component() {
        for ok in ["abc", "0123456789abcdef", "test_pod-1.x"] {
            validate_pod_id(ok).unwrap();
        }
        for bad in ["", "..", ".hidden", "-flag", "a/b", "a b", "a\0b", &"x".repeat(129)] {
            assert!(validate_pod_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pin_shape_check() {
        let p = PodPaths::new(Path::new("/run/crius"), None, "abc").unwrap();
        assert!(p.looks_like_pin(NsKind::Net, Path::new("/run/crius/ns/net/abc")));
        assert!(p.looks_like_pin(NsKind::Net, Path::new("/old/run/ns/net/abc")));
        assert!(!p.looks_like_pin(NsKind::Ipc, Path::new("/run/crius/ns/net/abc")));
        assert!(!p.looks_like_pin(NsKind::Net, Path::new("/")));
        assert!(!p.looks_like_pin(NsKind::Net, Path::new("/etc/net/abc")));
        assert!(!p.looks_like_pin(NsKind::Net, Path::new("ns/net/abc")));
    }
}
