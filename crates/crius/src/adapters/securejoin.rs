//! Resolving a path inside a container's rootfs as the container would see it: symlinks are
//! followed relative to the rootfs, never out of it (like runc's securejoin).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Deep enough for any real image; stops symlink loops.
const MAX_LINKS: usize = 255;

/// `root` joined with `unsafe_path`, every symlink resolved inside `root`. Components that do
/// not exist are kept as given (to be created).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> io::Result<PathBuf> {
    let mut pending: Vec<OsString> = unsafe_path.components().rev().filter_map(|c| component(c)).collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match fs::symlink_metadata(root.join(&candidate)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!("too many symlinks resolving {}", unsafe_path.display())));
                }
                let target = fs::read_link(root.join(&candidate))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(target.components().rev().filter_map(component));
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn component(c: Component<'_>) -> Option<OsString> {
    match c {
        Component::Normal(p) => Some(p.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/real"), "x").unwrap();
        symlink("/etc/real", root.join("etc/abs")).unwrap();
        symlink("../../../../etc/shadow", root.join("etc/escape")).unwrap();
        symlink("real", root.join("etc/rel")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(secure_join(root, Path::new("/etc/abs")).unwrap(), root.join("etc/real"));
        assert_eq!(secure_join(root, Path::new("/etc/rel")).unwrap(), root.join("etc/real"));
        assert_eq!(secure_join(root, Path::new("/etc/escape")).unwrap(), root.join("etc/shadow"));
        assert_eq!(secure_join(root, Path::new("/../../x/y")).unwrap(), root.join("x/y"));
        assert!(secure_join(root, Path::new("/loop")).is_err());
    }
}
