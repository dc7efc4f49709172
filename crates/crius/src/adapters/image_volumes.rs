//! The image's VOLUMEs: each gets a directory of the container's own, seeded with what the image
//! has at that path (containerd's `WithVolumes` copy), which the spec binds writable there.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, mknod};

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

/// Copies the tree at `src` into the empty directory `dst`, the owner and mode of each entry
/// kept (so the image's user can still write to its volume), `dst` taking those of `src`.
/// Symlinks are copied as links, never followed; hard links become copies; sockets are skipped
/// (nothing listens on a copy).
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            make_dir(&to)?;
            copy_tree(&from, &to)?;
            continue;
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
            continue;
        }
        if ft.is_file() {
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
        own_like(&meta, &to)?;
    }
    own_like(&fs::symlink_metadata(src)?, dst)
}

/// chown before chmod: chown clears the setuid and setgid bits.
fn own_like(meta: &fs::Metadata, path: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
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

    #[test]
    fn seeds() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), b"").unwrap();
        assert!(matches!(seed_of(tmp.path()).unwrap(), Seed::Dir));
        assert!(matches!(seed_of(&tmp.path().join("f")).unwrap(), Seed::NotADir));
        assert!(matches!(seed_of(&tmp.path().join("none")).unwrap(), Seed::Missing));
    }
}
