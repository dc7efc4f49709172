//! SELinux file labels on the host paths a container mounts: go-selinux's recursive Chcon, which
//! containerd and CRI-O run for mounts that ask for a relabel.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const LABEL_XATTR: &str = "security.selinux";

/// Gives `path` and, for a directory, everything under it `label`, without following symlinks
/// (a symlink gets the label itself). What already has the label is not written again, so a
/// second container of the pod costs only reads. A filesystem that keeps no labels (EOPNOTSUPP)
/// is left as it is; how many entries it had is returned beside the relabelled count.
pub fn relabel_tree(path: &Path, label: &str) -> io::Result<Relabelled> {
    let mut done = Relabelled::default();
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(entry) = pending.pop() {
        let meta = fs::symlink_metadata(&entry).map_err(|e| with_path(e, "reading", &entry))?;
        match relabel_one(&entry, label) {
            Ok(true) => done.changed += 1,
            Ok(false) => done.kept += 1,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                done.unsupported += 1;
                continue;
            }
            Err(e) => return Err(with_path(e, "labelling", &entry)),
        }
        if meta.is_dir() {
            for child in fs::read_dir(&entry).map_err(|e| with_path(e, "listing", &entry))? {
                pending.push(child.map_err(|e| with_path(e, "listing", &entry))?.path());
            }
        }
    }
    Ok(done)
}

/// What `relabel_tree` did, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relabelled {
    pub changed: u64,
    pub kept: u64,
    /// Entries on a filesystem without labels (and, for a directory, nothing under it is tried).
    pub unsupported: u64,
}

/// Whether the label was written (false: it was there already).
fn relabel_one(path: &Path, label: &str) -> io::Result<bool> {
    if let Some(current) = xattr::get(path, LABEL_XATTR)? {
        // The kernel may hand the label back with its terminating NUL.
        let current = current.strip_suffix(&[0]).unwrap_or(&current);
        if current == label.as_bytes() {
            return Ok(false);
        }
    }
    xattr::set(path, LABEL_XATTR, label.as_bytes())?;
    Ok(true)
}

fn with_path(e: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const LABEL: &str = "system_u:object_r:container_file_t:s0:c1,c2";

    fn label_of(path: &Path) -> Option<Vec<u8>> {
        xattr::get(path, LABEL_XATTR).unwrap()
    }

    #[test]
    fn labels_a_tree_but_not_what_its_symlinks_point_at() {
        // Writing security.* xattrs needs CAP_SYS_ADMIN (on a kernel without SELinux too).
        if !nix::unistd::geteuid().is_root() {
            eprintln!("relabel not checked: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "not mounted").unwrap();
        let tree = dir.path().join("volume");
        fs::create_dir_all(tree.join("sub/deeper")).unwrap();
        fs::write(tree.join("sub/deeper/file"), "data").unwrap();
        symlink(&outside, tree.join("sub/link")).unwrap();

        let first = match relabel_tree(&tree, LABEL) {
            Ok(r) => r,
            Err(e) => panic!("relabel: {e}"),
        };
        if first.unsupported > 0 {
            eprintln!("relabel not checked: {} keeps no security.* xattrs", dir.path().display());
            return;
        }
        assert_eq!(first, Relabelled { changed: 5, kept: 0, unsupported: 0 });
        for p in ["", "sub", "sub/deeper", "sub/deeper/file"] {
            assert_eq!(label_of(&tree.join(p)).as_deref(), Some(LABEL.as_bytes()), "{p:?}");
        }
        assert_eq!(label_of(&outside), None, "the symlink's target is not the container's");

        // Again, with one entry labelled otherwise meanwhile: only that one is written.
        xattr::set(tree.join("sub/deeper/file"), LABEL_XATTR, b"system_u:object_r:etc_t:s0").unwrap();
        let second = relabel_tree(&tree, LABEL).unwrap();
        assert_eq!(second, Relabelled { changed: 1, kept: 4, unsupported: 0 });

        // A single file (the pod's hosts file, say).
        let hosts = dir.path().join("hosts");
        fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        assert_eq!(relabel_tree(&hosts, LABEL).unwrap().changed, 1);
        assert_eq!(label_of(&hosts).as_deref(), Some(LABEL.as_bytes()));
    }

    #[test]
    fn a_missing_path_is_an_error_that_names_it() {
        let err = relabel_tree(Path::new("/nonexistent/crius-relabel"), LABEL).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/crius-relabel"), "{err}");
    }
}
