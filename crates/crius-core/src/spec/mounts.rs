//! The container's mounts, as containerd's `WithMounts` and `containerMounts` lay them out: the
//! standard kernel filesystems first (minus those a CRI mount replaces), then the CRI mounts and
//! the pod's files, sorted so that a parent is mounted before its children.

use oci_spec::runtime::Mount as OciMount;

use crate::container::model::{Mount, Propagation};
use crate::error::{Error, Result};

/// The pod's files a container gets unless it mounts its own at the same place.
#[derive(Debug, Clone, Copy)]
pub struct PodFiles<'a> {
    pub hostname: &'a str,
    pub hosts: &'a str,
    pub resolv: &'a str,
    /// None: host IPC, the host's /dev/shm.
    pub shm: Option<&'a str>,
}

/// What the mounts decide for the whole container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub mounts: Vec<OciMount>,
    /// "rshared" or "rslave" when a mount propagates (containerd sets the rootfs's too, or the
    /// propagation stops at the rootfs).
    pub rootfs_propagation: Option<String>,
}

/// Both paths of every CRI mount must be absolute: checked before anything is made of them
/// (a missing host path is created on the host).
pub fn validate(cri: &[Mount]) -> Result<()> {
    for (i, m) in cri.iter().enumerate() {
        if !m.container_path.starts_with('/') {
            return Err(Error::invalid(format!(
                "mounts[{i}].container_path {:?} must be an absolute path",
                m.container_path
            )));
        }
        if !m.host_path.starts_with('/') {
            return Err(Error::invalid(format!("mounts[{i}].host_path {:?} must be an absolute path", m.host_path)));
        }
    }
    Ok(())
}

/// The image's VOLUMEs that get a directory of their own (containerd's `volumeMounts`): each
/// cleaned path once, in the image's order, except where a CRI mount already puts something
/// (the kubelet's volume wins over the image's).
pub fn image_volumes(volumes: &[String], cri: &[Mount]) -> Vec<String> {
    let cri_dests: Vec<String> = cri.iter().map(|m| clean(&m.container_path)).collect();
    let mut out: Vec<String> = Vec::with_capacity(volumes.len());
    for volume in volumes {
        let dest = clean(volume);
        // "/" would hide the whole rootfs; no runtime honours it.
        if dest != "/" && !cri_dests.contains(&dest) && !out.contains(&dest) {
            out.push(dest);
        }
    }
    out
}

/// The mounts of a container: the standard ones, `cri` (the CRI mounts, then the binds of the
/// image's volumes, see [`image_volumes`]) and the pod's files.
pub fn mounts(cri: &[Mount], pod: PodFiles<'_>, readonly_rootfs: bool, privileged: bool) -> Result<Mounts> {
    validate(cri)?;
    let mut binds: Vec<Mount> =
        cri.iter().map(|m| Mount { container_path: clean(&m.container_path), ..m.clone() }).collect();
    binds.reserve(4);
    let cri_dests: Vec<String> = binds.iter().map(|m| m.container_path.clone()).collect();
    let extra = [
        ("/etc/hostname", pod.hostname, readonly_rootfs),
        ("/etc/hosts", pod.hosts, readonly_rootfs),
        ("/etc/resolv.conf", pod.resolv, readonly_rootfs),
        // The pod's /dev/shm is shared by its containers, so it stays writable.
        ("/dev/shm", pod.shm.unwrap_or("/dev/shm"), false),
    ];
    for (dest, host_path, readonly) in extra {
        if !host_path.is_empty() && !cri_dests.iter().any(|d| d == dest) {
            binds.push(Mount {
                container_path: dest.to_string(),
                host_path: host_path.to_string(),
                readonly,
                ..Default::default()
            });
        }
    }
    // Stable, so that of two mounts at the same depth the CRI order is kept.
    binds.sort_by_key(|m| depth(&m.container_path));

    let replaced = |dest: &str| {
        binds.iter().any(|m| m.container_path == dest)
            || (dest.starts_with("/dev/") && binds.iter().any(|m| m.container_path == "/dev"))
    };
    let ro = if privileged { "rw" } else { "ro" };
    let defaults = [
        ("/proc", "proc", "proc", vec!["nosuid", "noexec", "nodev"]),
        ("/dev", "tmpfs", "tmpfs", vec!["nosuid", "strictatime", "mode=755", "size=65536k"]),
        (
            "/dev/pts",
            "devpts",
            "devpts",
            vec!["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        ("/dev/mqueue", "mqueue", "mqueue", vec!["nosuid", "noexec", "nodev"]),
        ("/sys", "sysfs", "sysfs", vec!["nosuid", "noexec", "nodev", ro]),
        ("/sys/fs/cgroup", "cgroup", "cgroup", vec!["nosuid", "noexec", "nodev", "relatime", ro]),
    ];
    let mut out: Vec<OciMount> = defaults
        .into_iter()
        .filter(|(dest, ..)| !replaced(dest))
        .map(|(dest, typ, source, options)| {
            oci_mount(dest, typ, source, options.into_iter().map(String::from).collect())
        })
        .collect();

    let mut rootfs_propagation: Option<String> = None;
    for m in &binds {
        let propagation = match m.propagation {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => {
                if rootfs_propagation.as_deref() != Some("rshared") {
                    rootfs_propagation = Some("rslave".into());
                }
                "rslave"
            }
            Propagation::Bidirectional => {
                rootfs_propagation = Some("rshared".into());
                "rshared"
            }
        };
        let options =
            vec!["rbind".to_string(), propagation.to_string(), if m.readonly { "ro" } else { "rw" }.to_string()];
        out.push(oci_mount(&m.container_path, "bind", &m.host_path, options));
    }
    Ok(Mounts { mounts: out, rootfs_propagation })
}

fn oci_mount(dest: &str, typ: &str, source: &str, options: Vec<String>) -> OciMount {
    let mut m = OciMount::default();
    m.set_destination(dest.into())
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.into()))
        .set_options(Some(options));
    m
}

/// Go's `filepath.Clean` for absolute paths: no empty or "." components, ".." resolved.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn depth(path: &str) -> usize {
    path.split('/').filter(|p| !p.is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: PodFiles<'static> = PodFiles {
        hostname: "/var/lib/crius/pods/p/hostname",
        hosts: "/var/lib/crius/pods/p/hosts",
        resolv: "/var/lib/crius/pods/p/resolv.conf",
        shm: Some("/run/crius/pods/p/shm"),
    };

    fn dests(m: &Mounts) -> Vec<String> {
        m.mounts.iter().map(|m| m.destination().to_string_lossy().into_owned()).collect()
    }

    fn find<'a>(m: &'a Mounts, dest: &str) -> &'a OciMount {
        m.mounts.iter().find(|m| m.destination().to_str() == Some(dest)).unwrap()
    }

    fn bind(dest: &str, host: &str) -> Mount {
        Mount { container_path: dest.into(), host_path: host.into(), ..Default::default() }
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/a//b/./c/"), "/a/b/c");
        assert_eq!(clean("/a/../b"), "/b");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn standard_layout() {
        let m = mounts(&[], POD, false, false).unwrap();
        assert_eq!(
            dests(&m),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/dev/shm"
            ]
        );
        let shm = find(&m, "/dev/shm");
        assert_eq!(shm.source().as_deref().and_then(|s| s.to_str()), Some("/run/crius/pods/p/shm"));
        assert_eq!(shm.options().as_deref(), Some(&["rbind".to_string(), "rprivate".into(), "rw".into()][..]));
        assert!(find(&m, "/sys").options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(m.rootfs_propagation.is_none());
    }

    #[test]
    fn cri_mounts_sorted_and_override_pod_files() {
        let cri = [bind("/data/sub", "/h/sub"), bind("/etc/hosts/", "/h/hosts"), bind("/data", "/h/data")];
        let m = mounts(&cri, POD, false, false).unwrap();
        let d = dests(&m);
        let pos = |p: &str| d.iter().position(|x| x == p).unwrap();
        assert!(pos("/data") < pos("/data/sub"));
        assert_eq!(d.iter().filter(|x| *x == "/etc/hosts").count(), 1);
        assert_eq!(find(&m, "/etc/hosts").source().as_deref().and_then(|s| s.to_str()), Some("/h/hosts"));
    }

    #[test]
    fn a_dev_mount_replaces_everything_under_dev() {
        let m = mounts(&[bind("/dev", "/dev")], POD, false, false).unwrap();
        let d = dests(&m);
        assert!(!d.iter().any(|x| x == "/dev/pts" || x == "/dev/mqueue"));
        assert_eq!(d.iter().filter(|x| *x == "/dev").count(), 1);
        // The pod's shm is still bound over the new /dev.
        assert!(d.iter().any(|x| x == "/dev/shm"));
    }

    #[test]
    fn propagation_and_readonly() {
        let cri = [
            Mount { readonly: true, propagation: Propagation::HostToContainer, ..bind("/a", "/h/a") },
            Mount { propagation: Propagation::Bidirectional, ..bind("/b", "/h/b") },
        ];
        let m = mounts(&cri, POD, false, false).unwrap();
        assert_eq!(find(&m, "/a").options().as_deref(), Some(&["rbind".to_string(), "rslave".into(), "ro".into()][..]));
        assert_eq!(
            find(&m, "/b").options().as_deref(),
            Some(&["rbind".to_string(), "rshared".into(), "rw".into()][..])
        );
        assert_eq!(m.rootfs_propagation.as_deref(), Some("rshared"));
        let m = mounts(&cri[..1], POD, false, false).unwrap();
        assert_eq!(m.rootfs_propagation.as_deref(), Some("rslave"));
    }

    #[test]
    fn readonly_rootfs_makes_pod_files_readonly_but_not_shm() {
        let m = mounts(&[], POD, true, false).unwrap();
        assert!(find(&m, "/etc/resolv.conf").options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(find(&m, "/dev/shm").options().as_ref().unwrap().contains(&"rw".to_string()));
    }

    #[test]
    fn host_ipc_binds_the_host_shm_and_missing_files_are_skipped() {
        let pod = PodFiles { shm: None, hostname: "", ..POD };
        let m = mounts(&[], pod, false, false).unwrap();
        assert_eq!(find(&m, "/dev/shm").source().as_deref().and_then(|s| s.to_str()), Some("/dev/shm"));
        assert!(!dests(&m).iter().any(|d| d == "/etc/hostname"));
    }

    #[test]
    fn privileged_sysfs_and_cgroupfs_are_writable() {
        let m = mounts(&[], POD, false, true).unwrap();
        for dest in ["/sys", "/sys/fs/cgroup"] {
            let opts = find(&m, dest).options().clone().unwrap();
            assert!(opts.contains(&"rw".to_string()) && !opts.contains(&"ro".to_string()), "{dest}: {opts:?}");
        }
    }

    #[test]
    fn image_volumes_not_under_a_cri_mount() {
        let volumes = ["/data/", "/cache", "logs", "/data", "/", "/srv/../var/x"].map(String::from);
        let cri = [bind("/cache/", "/h/cache")];
        assert_eq!(image_volumes(&volumes, &cri), ["/data", "/logs", "/var/x"]);
        assert!(image_volumes(&[], &cri).is_empty());
    }

    #[test]
    fn relative_paths_are_invalid() {
        let err = mounts(&[bind("data", "/h")], POD, false, false).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("mounts[0].container_path"), "{err}");
        let err = mounts(&[bind("/data", "h")], POD, false, false).unwrap_err();
        assert!(err.to_string().contains("mounts[0].host_path"), "{err}");
    }
}
