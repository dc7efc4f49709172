//! A container's filesystem on the host: the writable layer under `<root>/containers/<id>/`,
//! the bundle and its overlay rootfs under `<state>/containers/<id>/bundle/`.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crius_core::container::model::Device;
use crius_core::ports::container::{ContainerFs, ContainerPaths};
use crius_core::spec::HostDevice;
use crius_core::{Error, Result};

use super::atomic::write_replace_volatile;
use super::securejoin::secure_join;

/// The kernel's limit on mount options (one page); overlay's lowerdir must fit in it.
const MAX_MOUNT_DATA: usize = 4000;

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

    fn create_volumes(&self, paths: &ContainerPaths, volumes: &[String]) -> Result<()> {
        let root = Path::new(&paths.rootfs);
        for volume in volumes {
            let dir = secure_join(root, Path::new(volume)).map_err(io_err(format!("resolving volume {volume}")))?;
            fs::create_dir_all(&dir).map_err(io_err(format!("creating volume {volume}")))?;
        }
        Ok(())
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
        fs::read_to_string(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                Error::invalid(format!("seccomp profile localhost/{path} does not exist on this node"))
            }
            _ => Error::internal(format!("reading the seccomp profile {path}"), e),
        })
    }

    fn write_spec(&self, paths: &ContainerPaths, spec_json: &[u8]) -> Result<()> {
        let path = Path::new(&paths.bundle).join("config.json");
        write_replace_volatile(&path, spec_json, 0o600).map_err(io_err(format!("writing {}", path.display())))
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
        for part in ["upper", "work", "empty"] {
            remove_dir_all(&layer.join(part))?;
        }
        Ok(())
    }
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
