//! A container's filesystem on the host: the writable layer under `<root>/containers/<id>/`,
//! the image volumes' directories under `<root>/containers/<id>/volumes/`, the bundle and its
//! overlay rootfs under `<state>/containers/<id>/bundle/`.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crius_core::container::model::{Device, Mount, Propagation};
use crius_core::ports::container::{ContainerFs, ContainerPaths};
use crius_core::spec::HostDevice;
use crius_core::{Error, Result};

use super::atomic::write_replace_volatile;
use super::image_volumes;
use super::securejoin::secure_join;

/// The kernel's limit on mount options (one page); overlay's lowerdir must fit in it.
const MAX_MOUNT_DATA: usize = 4000;

/// Missing host paths that are refused rather than created as a directory (CRI-O's default
/// `absent_mount_sources_to_reject`): a directory at /etc/hostname breaks the node's next boot.
const ABSENT_SOURCES_TO_REJECT: &[&str] = &["/etc/hostname"];

const VOLUMES: &str = "volumes";

pub struct HostContainerFs {
    /// `<root>/containers`: writable layers (and the records, which the state store owns).
    layers_dir: PathBuf,
    /// `<state>/containers`: bundles.
    bundles_dir: PathBuf,
}

impl HostContainerFs {
    pub fn new(root: &Path, state: &Path) -> io::Result<Self> {
        let fs = HostContainerFs { layers_dir: root.join("containers"), bundles_dir: state.join("containers") };
        fs::create_dir_all(&fs.layers_dir)?;
        fs::create_dir_all(&fs.bundles_dir)?;
        Ok(fs)
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.bundles_dir.join(id).join("bundle")
    }

    /// The image volumes' directories, with the writable layer: on disk, like the data in them.
    fn volumes_dir(&self, id: &str) -> PathBuf {
        self.layers_dir.join(id).join(VOLUMES)
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |e| Error::internal(what, e)
}

impl ContainerFs for HostContainerFs {
    fn prepare(&self, container_id: &str, layers: &[PathBuf]) -> Result<ContainerPaths> {
        let layer = self.layers_dir.join(container_id);
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        let bundle = self.bundle(container_id);
        let rootfs = bundle.join("rootfs");
        for dir in [&upper, &work, &rootfs] {
            fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        // An image without layers still needs a lower layer.
        let empty = layer.join("empty");
        let lowers: Vec<PathBuf> = if layers.is_empty() {
            fs::create_dir_all(&empty).map_err(io_err(format!("creating {}", empty.display())))?;
            vec![empty]
        } else {
            layers.iter().rev().cloned().collect()
        };
        let lowerdir = lowers.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(":");
        let data = format!("lowerdir={lowerdir},upperdir={},workdir={}", upper.display(), work.display());
        if data.len() > MAX_MOUNT_DATA {
            return Err(Error::precondition(format!(
                "the image has too many layers ({}) for one overlay mount here",
                layers.len()
            )));
        }
        nix::mount::mount(Some("overlay"), &rootfs, Some("overlay"), nix::mount::MsFlags::empty(), Some(data.as_str()))
            .map_err(|e| Error::internal(format!("mounting the overlay rootfs at {}", rootfs.display()), e))?;
        Ok(ContainerPaths {
            bundle: bundle.to_string_lossy().into_owned(),
            rootfs: rootfs.to_string_lossy().into_owned(),
        })
    }

    fn read_user_db(&self, paths: &ContainerPaths) -> Result<(String, String)> {
        let root = Path::new(&paths.rootfs);
        let read = |name: &str| -> Result<String> {
            let path = secure_join(root, Path::new(name)).map_err(io_err(format!("resolving {name} in the rootfs")))?;
            match fs::read(&path) {
                Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(Error::internal(format!("reading {name} in the rootfs"), e)),
            }
        };
        Ok((read("/etc/passwd")?, read("/etc/group")?))
    }

    fn create_volumes(&self, container_id: &str, paths: &ContainerPaths, volumes: &[String]) -> Result<Vec<Mount>> {
        if volumes.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.volumes_dir(container_id);
        // Only root gets in: the container reaches each volume through its bind.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let root = Path::new(&paths.rootfs);
        let mut binds = Vec::with_capacity(volumes.len());
        for (i, volume) in volumes.iter().enumerate() {
            // Named by position: volume paths may nest or hold characters a file name cannot.
            let host = dir.join(i.to_string());
            image_volumes::make_dir(&host)
                .map_err(io_err(format!("creating {} for volume {volume}", host.display())))?;
            let seed = secure_join(root, Path::new(volume))
                .map_err(io_err(format!("resolving volume {volume} in the rootfs")))?;
            match image_volumes::seed_of(&seed).map_err(io_err(format!("looking up volume {volume} in the rootfs")))? {
                image_volumes::Seed::Dir => image_volumes::copy_tree(&seed, &host)
                    .map_err(io_err(format!("copying the image's {volume} into its volume")))?,
                image_volumes::Seed::Missing => {}
                image_volumes::Seed::NotADir => {
                    return Err(Error::precondition(format!(
                        "the image declares VOLUME {volume}, but has a file there, not a directory: no volume \
                         can be bound over it; mount something at {volume} instead"
                    )));
                }
            }
            binds.push(Mount {
                container_path: volume.clone(),
                host_path: host.to_string_lossy().into_owned(),
                readonly: false,
                selinux_relabel: true,
                propagation: Propagation::Private,
            });
        }
        Ok(binds)
    }

    fn remove_volumes(&self, container_id: &str) -> Result<()> {
        remove_dir_all(&self.volumes_dir(container_id))
    }

    fn resolve_devices(&self, devices: &[Device], all_host_devices: bool) -> Result<Vec<HostDevice>> {
        let mut out = Vec::new();
        if all_host_devices {
            walk_dev(Path::new("/dev"), &mut out);
        }
        for device in devices {
            let meta = fs::metadata(&device.host_path)
                .map_err(|e| Error::invalid(format!("device {}: {e}; it must exist on the node", device.host_path)))?;
            let resolved = host_device(&device.host_path, &meta, &device.container_path, &device.permissions)
                .ok_or_else(|| {
                    Error::invalid(format!("device {} is not a character or block device", device.host_path))
                })?;
            out.retain(|d: &HostDevice| d.container_path != resolved.container_path);
            out.push(resolved);
        }
        Ok(out)
    }

    fn read_seccomp_profile(&self, path: &str) -> Result<String> {
        // A relative path would be read from the daemon's working directory.
        if !Path::new(path).is_absolute() {
            return Err(Error::invalid(format!(
                "seccomp profile {path:?} (Localhost): localhost_ref must be an absolute path on the node"
            )));
        }
        fs::read_to_string(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::invalid(format!(
                "seccomp profile {path} (Localhost) does not exist on this node: put the profile there or fix \
                 localhost_ref"
            )),
            _ => Error::internal(format!("reading the seccomp profile {path}"), e),
        })
    }

    fn prepare_mount_sources(&self, mounts: &[Mount]) -> Result<()> {
        // Read once, and only when some mount propagates.
        let mut table: Option<Vec<crius_sys::mountinfo::MountEntry>> = None;
        for (i, m) in mounts.iter().enumerate() {
            ensure_host_path(i, &m.host_path, ABSENT_SOURCES_TO_REJECT)?;
            if m.propagation == Propagation::Private {
                continue;
            }
            let entries = match &mut table {
                Some(t) => t,
                None => table.insert(
                    crius_sys::mountinfo::read_self().map_err(|e| Error::internal("reading the mount table", e))?,
                ),
            };
            check_propagation(i, m, entries)?;
        }
        Ok(())
    }

    fn relabel(&self, path: &str, label: &str) -> Result<()> {
        let started = std::time::Instant::now();
        let done = super::selinux_relabel::relabel_tree(Path::new(path), label)
            .map_err(|e| Error::internal(format!("relabelling {path}"), e))?;
        if done.unsupported > 0 {
            tracing::debug!(path, "the filesystem keeps no SELinux labels: left as it is");
        }
        tracing::debug!(
            path,
            label,
            changed = done.changed,
            kept = done.kept,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "SELinux relabel"
        );
        Ok(())
    }

    fn write_spec(&self, paths: &ContainerPaths, spec_json: &[u8]) -> Result<()> {
        let path = Path::new(&paths.bundle).join("config.json");
        write_replace_volatile(&path, spec_json, 0o600).map_err(io_err(format!("writing {}", path.display())))
    }

    fn read_spec(&self, bundle: &str) -> Result<Option<Vec<u8>>> {
        let path = Path::new(bundle).join("config.json");
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!("reading {}", path.display()), e)),
        }
    }

    fn ensure_log_dir(&self, log_path: &str) -> Result<()> {
        match Path::new(log_path).parent() {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(io_err(format!("creating the log directory {}", dir.display())))
            }
            None => Ok(()),
        }
    }

    fn cleanup(&self, container_id: &str) -> Result<()> {
        let bundle = self.bundle(container_id);
        let rootfs = bundle.join("rootfs");
        crius_sys::mounts::unmount(&rootfs)
            .map_err(|e| Error::internal(format!("unmounting {}", rootfs.display()), e))?;
        remove_dir_all(&self.bundles_dir.join(container_id))?;
        let layer = self.layers_dir.join(container_id);
        for part in ["upper", "work", "empty", VOLUMES] {
            remove_dir_all(&layer.join(part))?;
        }
        Ok(())
    }
}

/// Creates a missing bind-mount source as a directory, as containerd's `WithMounts` and CRI-O's
/// `addOCIBindMounts` do: the kubelet leaves hostPath volumes without a type to the runtime.
fn ensure_host_path(i: usize, host_path: &str, reject: &[&str]) -> Result<()> {
    match fs::metadata(host_path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let cleaned = crius_core::spec::mounts::clean(host_path);
            if reject.contains(&cleaned.as_str()) {
                return Err(Error::invalid(format!(
                    "mounts[{i}].host_path {host_path:?} does not exist and would be created as a directory, which \
                     breaks the node: create it as a file on the node first"
                )));
            }
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(host_path)
                .map_err(io_err(format!("mounts[{i}]: creating the missing host path {host_path:?} as a directory")))?;
            tracing::info!(host_path, "created the missing host path of a bind mount as a directory");
            Ok(())
        }
        Err(e) => Err(Error::internal(format!("mounts[{i}]: looking up the host path {host_path:?}"), e)),
    }
}

/// containerd's `ensureShared` and `ensureSharedOrSlave`: a propagating bind of a source on a
/// private mount would be accepted by the runtime and silently propagate nothing.
fn check_propagation(i: usize, m: &Mount, entries: &[crius_sys::mountinfo::MountEntry]) -> Result<()> {
    let host_path = &m.host_path;
    // The runtime binds what the path resolves to, so that is the mount to check.
    let resolved = fs::canonicalize(host_path).map_err(io_err(format!("mounts[{i}]: resolving {host_path:?}")))?;
    let entry = crius_sys::mountinfo::containing(&resolved, entries).ok_or_else(|| {
        Error::precondition(format!("mounts[{i}]: host path {host_path:?} is on no mount of this mount namespace"))
    })?;
    let (ok, needs, mode) = match m.propagation {
        Propagation::Bidirectional => (entry.is_shared(), "shared", "Bidirectional"),
        Propagation::HostToContainer => (entry.is_shared() || entry.is_slave(), "shared or slave", "HostToContainer"),
        Propagation::Private => return Ok(()),
    };
    if ok {
        return Ok(());
    }
    let mount_point = entry.mount_point.display();
    Err(Error::precondition(format!(
        "mounts[{i}]: host path {host_path:?} is on the mount {mount_point}, which is not {needs}: \
         {mode} mount propagation needs it {needs}; make it so on the node (mount --make-rshared {mount_point}, \
         or bind the directory onto itself first to make it a mount point of its own) or use no propagation"
    )))
}

fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(format!("removing {}", path.display()), e)),
    }
}

fn host_device(host_path: &str, meta: &fs::Metadata, container_path: &str, permissions: &str) -> Option<HostDevice> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(HostDevice {
        host_path: host_path.to_string(),
        container_path: if container_path.is_empty() { host_path.to_string() } else { container_path.to_string() },
        kind,
        major: i64::from(nix::sys::stat::major(rdev) as u32),
        minor: i64::from(nix::sys::stat::minor(rdev) as u32),
        file_mode: meta.permissions().mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        permissions: if permissions.is_empty() { "rwm".to_string() } else { permissions.to_string() },
    })
}

/// Every device node of the host, for privileged containers, skipping what each container gets
/// of its own (pts, shm, mqueue) as runc does.
fn walk_dev(dir: &Path, out: &mut Vec<HostDevice>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            let name = entry.file_name();
            if !matches!(name.to_str(), Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")) {
                walk_dev(&path, out);
            }
            continue;
        }
        let path_str = path.to_string_lossy().into_owned();
        if path_str == "/dev/console" {
            continue;
        }
        if let Some(device) = host_device(&path_str, &meta, &path_str, "rwm") {
            out.push(device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_core::ErrorKind;
    use crius_sys::mountinfo::parse;

    #[test]
    fn a_missing_host_path_becomes_a_directory_with_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c");
        ensure_host_path(0, path.to_str().unwrap(), &[]).unwrap();
        assert!(path.is_dir());
        // An existing path (a file here) is left as it is.
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        ensure_host_path(0, file.to_str().unwrap(), &[]).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn a_missing_path_on_the_reject_list_is_refused_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostname");
        let listed = path.to_str().unwrap().to_string();
        // However it is spelled.
        let spelled = format!("{}//./hostname", dir.path().display());
        let err = ensure_host_path(3, &spelled, &[&listed]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("mounts[3].host_path") && err.to_string().contains("as a file"), "{err}");
        assert!(!path.exists());
        // Once it exists, it is mounted like any other.
        fs::write(&path, "node\n").unwrap();
        ensure_host_path(3, &listed, &[&listed]).unwrap();
        assert!(ABSENT_SOURCES_TO_REJECT.contains(&"/etc/hostname"));
    }

    fn bind(host_path: &Path, propagation: Propagation) -> Mount {
        Mount {
            container_path: "/x".into(),
            host_path: host_path.to_string_lossy().into_owned(),
            propagation,
            ..Default::default()
        }
    }

    #[test]
    fn propagation_needs_a_shared_or_slave_mount() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        for sub in ["shared", "slave", "private"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        let table = parse(&format!(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
             2 1 0:5 / {r}/shared rw shared:7 - ext4 /dev/sda1 rw\n\
             3 1 0:5 / {r}/slave rw master:7 - ext4 /dev/sda1 rw\n",
            r = root.display()
        ));
        let check = |sub: &str, p: Propagation| check_propagation(1, &bind(&root.join(sub), p), &table);
        check("shared", Propagation::Bidirectional).unwrap();
        check("shared", Propagation::HostToContainer).unwrap();
        check("slave", Propagation::HostToContainer).unwrap();
        let err = check("slave", Propagation::Bidirectional).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        let msg = err.to_string();
        assert!(msg.contains("mounts[1]") && msg.contains(&format!("{}/slave", root.display())), "{msg}");
        assert!(msg.contains("which is not shared:") && msg.contains("mount --make-rshared"), "{msg}");
        // On the private `/`.
        let err = check("private", Propagation::HostToContainer).unwrap_err();
        assert!(err.to_string().contains("is on the mount /, which is not shared or slave"), "{err}");
    }
}
