//! Applies tar entries to a layer directory, one at a time.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{AT_FDCWD, AtFlags};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};
use tar::EntryType;

use super::paths::{clean_name, existing_inside, prepare_parents, symlink_stays_inside};
use super::whiteout::{self, Whiteout};
use crate::error::UnpackError;

/// xattrs a layer may not set: overlayfs reads these from lower directories, and a layer that
/// brings its own could redirect lookups or fake opacity.
const FORBIDDEN_XATTR_PREFIX: &str = "trusted.overlay.";

pub(super) struct Applier {
    root: PathBuf,
    /// Directory times are set last: creating entries inside a directory changes its mtime.
    dir_times: Vec<(PathBuf, i64)>,
}

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Applier {
    pub(super) fn new(root: &Path) -> Self {
        Applier { root: root.to_path_buf(), dir_times: Vec::new() }
    }

    pub(super) fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean_name(&raw)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // The layer root ("./"): its metadata is the upper directory's business in overlay.
            return Ok(());
        }
        let file_name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        match whiteout::classify(&file_name) {
            Whiteout::No => {}
            Whiteout::Meta => return Ok(()),
            Whiteout::Opaque => {
                prepare_parents(&self.root, &rel, &shown)?;
                let dir = self.root.join(rel.parent().unwrap_or(Path::new("")));
                return whiteout::make_opaque(&dir);
            }
            Whiteout::Remove(name) => {
                let target_rel = rel.with_file_name(name);
                prepare_parents(&self.root, &target_rel, &shown)?;
                let target = self.root.join(&target_rel);
                clear(&target, false)?;
                return whiteout::make_removal(&target);
            }
        }
        prepare_parents(&self.root, &rel, &shown)?;
        let path = self.root.join(&rel);
        let meta = read_meta(entry, &shown)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                clear(&path, false)?;
                // create_new (O_EXCL) never follows a symlink put there since.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(UnpackError::io("creating", &path))?;
                io::copy(entry, &mut file).map_err(UnpackError::Tar)?;
                drop(file);
                set_meta(&path, &meta, false)?;
                set_time(&path, meta.mtime)?;
            }
            EntryType::Directory => {
                clear(&path, true)?;
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(UnpackError::io("creating directory", &path))?;
                }
                set_meta(&path, &meta, false)?;
                self.dir_times.push((path, meta.mtime));
            }
            EntryType::Symlink => {
                let target = link_name(entry, &shown)?;
                if !symlink_stays_inside(&rel, &target) {
                    return Err(UnpackError::Escape {
                        entry: shown,
                        why: "the symlink's relative target climbs out of the layer",
                    });
                }
                clear(&path, false)?;
                std::os::unix::fs::symlink(&target, &path).map_err(UnpackError::io("creating symlink", &path))?;
                set_meta(&path, &meta, true)?;
                set_time(&path, meta.mtime)?;
            }
            EntryType::Link => {
                let target_raw = link_name(entry, &shown)?;
                let target_rel = clean_name(target_raw.as_os_str().as_encoded_bytes()).map_err(|_| {
                    UnpackError::Escape { entry: shown.clone(), why: "the hardlink target is absolute or has `..`" }
                })?;
                let target = existing_inside(&self.root, &target_rel, &shown)?;
                if target == path {
                    return Ok(());
                }
                clear(&path, false)?;
                // linkat without AT_SYMLINK_FOLLOW: a symlink target is linked, never followed.
                fs::hard_link(&target, &path).map_err(UnpackError::io("creating hardlink", &path))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                clear(&path, false)?;
                let (sflag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, device(entry)?),
                    EntryType::Block => (SFlag::S_IFBLK, device(entry)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                mknod(&path, sflag, Mode::from_bits_truncate(meta.mode & 0o777), dev)
                    .map_err(|e| UnpackError::io("creating device node", &path)(io::Error::from(e)))?;
                set_meta(&path, &meta, false)?;
                set_time(&path, meta.mtime)?;
            }
            other => {
                tracing::debug!(entry = %shown, kind = ?other, "skipping tar entry of a kind layers do not use");
            }
        }
        Ok(())
    }

    /// Sets the directory times, now that nothing more is written inside them.
    pub(super) fn finish(self) -> Result<(), UnpackError> {
        for (dir, mtime) in self.dir_times.iter().rev() {
            set_time(dir, *mtime)?;
        }
        Ok(())
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta, UnpackError> {
    let bad =
        |what: &str, e: io::Error| UnpackError::BadEntry { entry: shown.to_string(), why: format!("{what}: {e}") };
    let h = entry.header();
    let uid = h.uid().map_err(|e| bad("uid", e))?;
    let gid = h.gid().map_err(|e| bad("gid", e))?;
    let mode = h.mode().map_err(|e| bad("mode", e))?;
    let mtime = h.mtime().map_err(|e| bad("mtime", e))?;
    let (uid, gid) = (
        u32::try_from(uid).map_err(|_| bad("uid", io::Error::other("out of range")))?,
        u32::try_from(gid).map_err(|_| bad("gid", io::Error::other("out of range")))?,
    );
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Tar)? {
        for ext in exts {
            let ext = ext.map_err(UnpackError::Tar)?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with(FORBIDDEN_XATTR_PREFIX) {
                    tracing::warn!(entry = %shown, xattr = name, "ignoring an overlayfs xattr brought by the layer");
                    continue;
                }
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta { uid, gid, mode, mtime: i64::try_from(mtime).unwrap_or(i64::MAX), xattrs })
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, shown: &str) -> Result<PathBuf, UnpackError> {
    match entry.link_name().map_err(UnpackError::Tar)? {
        Some(t) if !t.as_os_str().is_empty() => Ok(t.into_owned()),
        _ => Err(UnpackError::BadEntry { entry: shown.to_string(), why: "a link without a target".into() }),
    }
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> Result<u64, UnpackError> {
    let h = entry.header();
    let major = h.device_major().map_err(UnpackError::Tar)?.unwrap_or(0);
    let minor = h.device_minor().map_err(UnpackError::Tar)?.unwrap_or(0);
    Ok(makedev(u64::from(major), u64::from(minor)))
}

/// Removes what is at `path` so an entry can take its place; a directory stays when the new
/// entry is a directory too (tar semantics: the later entry's metadata wins).
fn clear(path: &Path, keep_dir: bool) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(UnpackError::io("inspecting", path)(e)),
        Ok(m) if m.is_dir() && keep_dir => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(UnpackError::io("replacing directory", path)),
        Ok(_) => fs::remove_file(path).map_err(UnpackError::io("replacing", path)),
    }
}

/// Owner first (chown clears setuid bits), then mode, then xattrs; none of them follows a symlink.
fn set_meta(path: &Path, meta: &Meta, is_symlink: bool) -> Result<(), UnpackError> {
    fchownat(
        AT_FDCWD,
        path,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| UnpackError::io("setting the owner of", path)(io::Error::from(e)))?;
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode & 0o7777))
            .map_err(UnpackError::io("setting the mode of", path))?;
    }
    for (name, value) in &meta.xattrs {
        if let Err(e) = xattr::set(path, name, value) {
            if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) {
                tracing::warn!(path = %path.display(), xattr = %name, "the filesystem does not support this xattr; skipped");
                continue;
            }
            return Err(UnpackError::io("setting an xattr on", path)(e));
        }
    }
    Ok(())
}

fn set_time(path: &Path, mtime: i64) -> Result<(), UnpackError> {
    let t = TimeSpec::new(mtime, 0);
    utimensat(AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| UnpackError::io("setting the times of", path)(io::Error::from(e)))
}
