//! Where a tar entry may write: names are cleaned into plain relative paths, and nothing is ever
//! written through a symlink, so a layer cannot reach outside its directory.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::UnpackError;

/// A tar entry name as a relative path of normal components. Absolute names and `..` are
/// refused (no legitimate image writer produces them); `.` parts are dropped. An empty result
/// is the layer root itself.
pub fn clean_name(raw: &[u8]) -> Result<PathBuf, UnpackError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Escape { entry: shown(), why: "absolute path" });
            }
            Component::ParentDir => return Err(UnpackError::Escape { entry: shown(), why: "`..` in the path" }),
        }
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative to the layer root) pointing at `target` stays inside
/// the root. Absolute targets do: they resolve against the container's root at run time. A
/// relative target must not climb above the root.
pub fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth = link.parent().map_or(0, |p| p.components().count()) as isize;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    true
}

/// Makes sure every ancestor of `rel` under `root` is a real directory, creating the missing
/// ones. A symlink (or file) on the way is refused: writing through it could land anywhere.
pub fn prepare_parents(root: &Path, rel: &Path, entry: &str) -> Result<(), UnpackError> {
    let Some(parent) = rel.parent() else { return Ok(()) };
    let mut at = root.to_path_buf();
    for c in parent.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::Escape { entry: entry.to_string(), why: "a parent directory is a symlink" });
            }
            Ok(_) => {
                return Err(UnpackError::BadEntry {
                    entry: entry.to_string(),
                    why: format!("parent {} is not a directory", at.display()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&at).map_err(UnpackError::io("creating directory", &at))?;
            }
            Err(e) => return Err(UnpackError::io("inspecting", &at)(e)),
        }
    }
    Ok(())
}

/// Checks, without creating anything, that `rel` exists under `root` through real directories
/// only (a hardlink's target).
pub fn existing_inside(root: &Path, rel: &Path, entry: &str) -> Result<PathBuf, UnpackError> {
    let mut at = root.to_path_buf();
    let count = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        at.push(c);
        let m = fs::symlink_metadata(&at).map_err(|_| UnpackError::BadEntry {
            entry: entry.to_string(),
            why: format!("hardlink target {} is not in the layer", rel.display()),
        })?;
        if i + 1 < count && !m.is_dir() {
            return Err(UnpackError::Escape {
                entry: entry.to_string(),
                why: "the hardlink target goes through a symlink",
            });
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_escapes_refused() {
        assert_eq!(clean_name(b"./usr/bin/sh").unwrap(), PathBuf::from("usr/bin/sh"));
        assert_eq!(clean_name(b"usr//lib/").unwrap(), PathBuf::from("usr/lib"));
        assert_eq!(clean_name(b"./").unwrap(), PathBuf::new());
        for bad in [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"a/.."] {
            assert!(matches!(clean_name(bad), Err(UnpackError::Escape { .. })), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn symlink_targets() {
        let l = Path::new;
        assert!(symlink_stays_inside(l("bin/sh"), l("/bin/busybox")));
        assert!(symlink_stays_inside(l("bin/sh"), l("busybox")));
        assert!(symlink_stays_inside(l("usr/lib/x"), l("../../lib/x")));
        assert!(!symlink_stays_inside(l("usr/lib/x"), l("../../../etc/shadow")));
        assert!(!symlink_stays_inside(l("x"), l("..")));
        assert!(symlink_stays_inside(l("a/b"), l("./c/../d")));
        assert!(!symlink_stays_inside(l("a"), l("b/../../c")));
    }

    #[test]
    fn parents_must_not_be_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
        let err = prepare_parents(root, Path::new("evil/passwd"), "evil/passwd").unwrap_err();
        assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
        prepare_parents(root, Path::new("a/b/c"), "a/b/c").unwrap();
        assert!(root.join("a/b").is_dir());
        assert!(existing_inside(root, Path::new("evil/passwd"), "x").is_err());
    }
}
