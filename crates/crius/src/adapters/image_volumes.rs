//! The image's VOLUMEs: each gets a directory of the container's own, seeded with what the image
//! has at that path (containerd's `WithVolumes` copy), which the spec binds writable there.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;

/// What the image has at a volume's path, resolved in its rootfs.
pub enum Seed {
    Dir,
    Missing,
    /// A file or special file: no directory can be bound over it.
    NotADir,
}

pub fn seed_of(path: &Path) -> io::Result<Seed> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(Seed::Dir),
        Ok(_) => Ok(Seed::NotADir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Seed::Missing),
        Err(e) => Err(e),
    }
}

/// Makes the directory `dir` (mode 0755, as runc makes a missing mount point), failing if it
/// exists: a fresh container's volume is never there yet.
pub fn make_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(dir)
}

/// xattrs that are overlayfs's own bookkeeping (opaque directories, redirects): never copied
/// into a volume, which is a plain directory (overlayfs does not list them anyway).
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// Copies the tree at `src` into the empty directory `dst`, keeping of each entry what
/// containerd's copy (continuity's `CopyDir`) keeps: owner and mode (so the image's user can
/// still write to its volume), extended attributes (`user.*`, `trusted.*`, `security.*` such as
/// file capabilities, where the filesystem takes them) and access and modification times to the
/// nanosecond; `dst` takes those of `src`. Symlinks are copied as links, never followed; files
/// hard-linked together stay linked together in the copy; sockets are skipped (nothing listens
/// on a copy).
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    copy_dir(src, dst, &mut HashMap::new())
}

/// `copied` maps the (device, inode) of each multiply-linked file copied so far to its copy.
fn copy_dir(src: &Path, dst: &Path, copied: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    // Before the listing, which may update the directory's atime.
    let meta = fs::symlink_metadata(src)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        // Before the content is read, which may update the atime.
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            make_dir(&to)?;
            copy_dir(&from, &to, copied)?;
            continue;
        }
        let inode = (meta.dev(), meta.ino());
        if !ft.is_symlink() && meta.nlink() > 1 {
            if let Some(first) = copied.get(&inode) {
                // The first copy already has the inode's content and attributes.
                fs::hard_link(first, &to)?;
                continue;
            }
            copied.insert(inode, to.clone());
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
        } else if ft.is_socket() {
            continue;
        } else {
            let kind = if ft.is_fifo() {
                SFlag::S_IFIFO
            } else if ft.is_char_device() {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            mknod(&to, kind, Mode::from_bits_truncate(meta.mode() & 0o777), meta.rdev()).map_err(io::Error::from)?;
        }
        keep_attributes(&meta, &from, &to)?;
    }
    // Last: creating the entries changed the directory's mtime.
    keep_attributes(&meta, src, dst)
}

/// Gives `to` the owner, mode, xattrs and times `from` has (`meta`), none of it following a
/// symlink. chown first (it clears the setuid and setgid bits and drops file capabilities),
/// then chmod (not of a symlink: that would follow it), then the xattrs, then the times.
fn keep_attributes(meta: &fs::Metadata, from: &Path, to: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    copy_xattrs(from, to)?;
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(AT_FDCWD, to, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("setting the times of {}: {e}", to.display())))
}

/// Copies every xattr of `from` that `to`'s filesystem takes. One the filesystem does not
/// support is skipped, as is a `security.*` one a security module refuses; any other failure
/// is an error (a volume without the image's file capabilities or labels would fail later, in
/// a less telling way).
fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    let names = match xattr::list(from) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("listing the xattrs of {}: {e}", from.display()))),
    };
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let shown = name.to_string_lossy();
        let value = match xattr::get(from, &name) {
            Ok(Some(value)) => value,
            // Removed since the listing.
            Ok(None) => continue,
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("reading the xattr {shown} of {}: {e}", from.display())));
            }
        };
        match xattr::set(to, &name, &value) {
            Ok(()) => {}
            Err(e)
                if unsupported(&e)
                    || (bytes.starts_with(b"security.")
                        && matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))) =>
            {
                tracing::warn!(path = %to.display(), xattr = %shown, error = %e, "xattr of an image volume not copied");
            }
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("setting the xattr {shown} on {}: {e}", to.display())));
            }
        }
    }
    Ok(())
}

fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_links_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/file"), b"hello").unwrap();
        fs::set_permissions(src.join("sub/file"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o1777)).unwrap();
        make_dir(&dst).unwrap();
        copy_tree(&src, &dst).unwrap();
        assert_eq!(fs::read(dst.join("sub/file")).unwrap(), b"hello");
        assert_eq!(fs::metadata(dst.join("sub/file")).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o7777, 0o1777);
        assert!(make_dir(&dst).is_err(), "an existing directory is not reused");
    }

    fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
        let (a, m) = (TimeSpec::new(atime.0, atime.1), TimeSpec::new(mtime.0, mtime.1));
        utimensat(AT_FDCWD, path, &a, &m, UtimensatFlags::NoFollowSymlink).unwrap();
    }

    fn times(path: &Path) -> ((i64, i64), (i64, i64)) {
        let m = fs::symlink_metadata(path).unwrap();
        ((m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec()))
    }

    #[test]
    fn hard_links_stay_linked() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir_all(src.join("a")).unwrap();
        fs::write(src.join("a/one"), b"shared").unwrap();
        fs::hard_link(src.join("a/one"), src.join("two")).unwrap();
        fs::write(src.join("alone"), b"single").unwrap();
        make_dir(&dst).unwrap();
        copy_tree(&src, &dst).unwrap();
        let (one, two) = (fs::metadata(dst.join("a/one")).unwrap(), fs::metadata(dst.join("two")).unwrap());
        assert_eq!(one.ino(), two.ino(), "the two names are one file in the copy too");
        assert_eq!(one.nlink(), 2);
        assert_ne!(one.ino(), fs::metadata(src.join("two")).unwrap().ino(), "a copy, not a link to the image");
        assert_eq!(fs::read(dst.join("two")).unwrap(), b"shared");
        assert_eq!(fs::metadata(dst.join("alone")).unwrap().nlink(), 1);
    }

    #[test]
    fn keeps_times_and_xattrs() {
        let root = nix::unistd::geteuid().is_root();
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir_all(src.join("sub")).unwrap();
        let file = src.join("sub/file");
        fs::write(&file, b"hello").unwrap();
        xattr::set(&file, "user.crius", b"kept").unwrap();
        xattr::set(src.join("sub"), "user.dir", b"too").unwrap();
        // A file capability (VFS_CAP_REVISION_2, effective, cap_net_bind_service): chown drops
        // it, so it is only kept when the xattrs come after the owner.
        let cap = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        if root {
            xattr::set(&file, "trusted.crius", b"root only").unwrap();
            std::os::unix::fs::lchown(&file, Some(1000), Some(1000)).unwrap();
            xattr::set(&file, "security.capability", &cap).unwrap();
        }
        std::os::unix::fs::symlink("sub/file", src.join("link")).unwrap();
        let old = |s: i64| ((s - 7, 5), (s, 123_456_789));
        set_times(&file, old(1_000_000_000).0, old(1_000_000_000).1);
        set_times(&src.join("link"), old(1_100_000_000).0, old(1_100_000_000).1);
        set_times(&src.join("sub"), old(1_200_000_000).0, old(1_200_000_000).1);
        set_times(&src, old(1_300_000_000).0, old(1_300_000_000).1);

        make_dir(&dst).unwrap();
        copy_tree(&src, &dst).unwrap();
        assert_eq!(times(&dst.join("sub/file")), old(1_000_000_000), "a file's times");
        assert_eq!(times(&dst.join("link")), old(1_100_000_000), "a symlink's own times");
        assert_eq!(times(&dst.join("sub")), old(1_200_000_000), "a directory's times, set after its entries");
        assert_eq!(times(&dst), old(1_300_000_000), "the volume takes the times of the image's directory");
        assert_eq!(xattr::get(dst.join("sub/file"), "user.crius").unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(xattr::get(dst.join("sub"), "user.dir").unwrap().as_deref(), Some(&b"too"[..]));
        if root {
            let copy = dst.join("sub/file");
            assert_eq!(xattr::get(&copy, "trusted.crius").unwrap().as_deref(), Some(&b"root only"[..]));
            assert_eq!(xattr::get(&copy, "security.capability").unwrap().as_deref(), Some(&cap[..]));
            assert_eq!(fs::metadata(&copy).unwrap().uid(), 1000);
        } else {
            eprintln!("trusted.* and security.capability not checked: needs root");
        }
    }

    #[test]
    fn seeds() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), b"").unwrap();
        assert!(matches!(seed_of(tmp.path()).unwrap(), Seed::Dir));
        assert!(matches!(seed_of(&tmp.path().join("f")).unwrap(), Seed::NotADir));
        assert!(matches!(seed_of(&tmp.path().join("none")).unwrap(), Seed::Missing));
    }
}
