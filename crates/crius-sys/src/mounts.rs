//! Mounts: namespace pins (bind a file onto a file), idempotent unmounts, shared mount dirs (so
//! unmounting a pin reaches the copies in container mount namespaces), and tmpfs for /dev/shm.

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Error, Result};
use crate::mountinfo;

/// Binds `src` onto `target`, which must exist and be of the same kind (file or directory).
pub fn bind_mount(src: &Path, target: &Path) -> Result<()> {
    mount(Some(src), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|errno| Error::Mount {
        what: src.display().to_string(),
        target: target.to_path_buf(),
        errno,
    })
}

/// Binds the file `src` (e.g. /proc/PID/ns/net) onto `target`, creating `target` as an empty
/// file (and its parent directories) first. This is how a namespace outlives its processes.
pub fn bind_mount_file(src: &Path, target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| Error::io("creating directory", parent, e))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o444)
        .open(target)
        .map_err(|e| Error::io("creating mount target", target, e))?;
    bind_mount(src, target)
}

/// Detaches every mount stacked on `target`. Idempotent: a path that is not a mount point
/// (EINVAL) or does not exist (ENOENT) counts as done. MNT_DETACH because a pinned namespace may
/// still be open somewhere (a CNI plugin, an `ip netns exec`), which must not make this fail.
pub fn unmount(target: &Path) -> Result<()> {
    // Bounded: a path cannot hold more stacked mounts than someone made on purpose.
    for _ in 0..64 {
        match umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(errno) => return Err(Error::Unmount { target: target.to_path_buf(), errno }),
        }
    }
    Err(Error::Unmount { target: target.to_path_buf(), errno: Errno::EBUSY })
}

/// Unmounts `target` and deletes the file or empty directory left behind. Idempotent.
pub fn unmount_and_remove(target: &Path) -> Result<()> {
    unmount(target)?;
    let removed = match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => fs::remove_dir(target),
        Ok(_) => fs::remove_file(target),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", target, e)),
    }
}

/// Makes `dir` (created if missing) a mount point with shared propagation, like iproute2 does
/// for /run/netns: where `/` is private, a namespace pin under `dir` would otherwise be copied
/// into every mount namespace created later (runc's containers) and unmounting it on the host
/// would not reach those copies, keeping the namespace alive.
pub fn make_shared_mount_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io("creating directory", dir, e))?;
    // Two monitors starting at once must not both bind the directory onto itself (that would
    // stack two mounts); an exclusive lock on the directory serializes the check and the bind.
    let lock = fs::File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
    // SAFETY: flock on a descriptor this function owns; it is released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io("locking", dir, std::io::Error::last_os_error()));
    }
    let canonical = canonical(dir)?;
    let entries = mountinfo::read_self()?;
    let shared = match mountinfo::entry_at(&canonical, &entries) {
        Some(entry) => entry.is_shared(),
        None => {
            mount(Some(&canonical), &canonical, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(|errno| Error::Mount {
                    what: canonical.display().to_string(),
                    target: canonical.clone(),
                    errno,
                })?;
            false
        }
    };
    if !shared {
        mount(None::<&str>, &canonical, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
            .map_err(|errno| Error::Mount { what: "shared propagation".into(), target: canonical.clone(), errno })?;
    }
    drop(lock);
    Ok(())
}

/// Whether `path` is a mount point, from /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let canonical = canonical(path)?;
    Ok(mountinfo::is_mount_point_in(&canonical, &mountinfo::read_self()?))
}

fn canonical(path: &Path) -> Result<PathBuf> {
    fs::canonicalize(path).map_err(|e| Error::io("resolving", path, e))
}

/// A tmpfs to mount, e.g. a pod's /dev/shm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmpfsOptions {
    pub size_bytes: u64,
    pub mode: u32,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl TmpfsOptions {
    /// What the kubelet and the reference runtimes give a pod's /dev/shm.
    pub fn dev_shm(size_bytes: u64) -> Self {
        TmpfsOptions { size_bytes, mode: 0o1777, nosuid: true, nodev: true, noexec: true }
    }

    fn flags(&self) -> MsFlags {
        let mut flags = MsFlags::empty();
        flags.set(MsFlags::MS_NOSUID, self.nosuid);
        flags.set(MsFlags::MS_NODEV, self.nodev);
        flags.set(MsFlags::MS_NOEXEC, self.noexec);
        flags
    }

    fn data(&self) -> String {
        format!("mode={:o},size={}", self.mode, self.size_bytes)
    }
}

impl Default for TmpfsOptions {
    fn default() -> Self {
        Self::dev_shm(64 * 1024 * 1024)
    }
}

/// Mounts a tmpfs on `target` (an existing directory).
pub fn mount_tmpfs(target: &Path, options: &TmpfsOptions) -> Result<()> {
    mount(Some("shm"), target, Some("tmpfs"), options.flags(), Some(options.data().as_str())).map_err(|errno| {
        Error::Mount { what: format!("tmpfs ({})", options.data()), target: target.to_path_buf(), errno }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_options() {
        let o = TmpfsOptions::default();
        assert_eq!(o.data(), "mode=1777,size=67108864");
        assert_eq!(o.flags(), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    }

    #[test]
    fn unmount_of_missing_or_plain_path_is_done() {
        let dir = tempfile::tempdir().unwrap();
        unmount(&dir.path().join("missing")).unwrap();
        unmount(dir.path()).unwrap();
        unmount_and_remove(&dir.path().join("missing")).unwrap();
        let f = dir.path().join("file");
        fs::write(&f, "").unwrap();
        unmount_and_remove(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn is_mount_point_sees_proc() {
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
    }
}
