//! OCI whiteouts (`.wh.NAME` files, `.wh..wh..opq` markers) in the form overlayfs reads from a
//! lower directory: a 0/0 character device for a removed name, and the
//! `trusted.overlay.opaque=y` xattr on a directory that hides everything below it.

use std::path::Path;

use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use crate::error::UnpackError;

pub const PREFIX: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";
/// aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): meaningless to overlayfs.
pub const META_PREFIX: &str = ".wh..wh.";
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a file name means as a whiteout.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// Not a whiteout.
    No,
    /// The directory holding it is opaque.
    Opaque,
    /// Ignore the entry.
    Meta,
    /// The named sibling is removed.
    Remove(&'a str),
}

pub fn classify(file_name: &str) -> Whiteout<'_> {
    if file_name == OPAQUE {
        Whiteout::Opaque
    } else if file_name.starts_with(META_PREFIX) {
        Whiteout::Meta
    } else if let Some(name) = file_name.strip_prefix(PREFIX) {
        if name.is_empty() || name == "." || name == ".." { Whiteout::Meta } else { Whiteout::Remove(name) }
    } else {
        Whiteout::No
    }
}

/// The overlayfs whiteout: a character device 0/0 in place of the removed name.
pub fn make_removal(path: &Path) -> Result<(), UnpackError> {
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .map_err(|e| UnpackError::io("creating whiteout", path)(std::io::Error::from(e)))
}

pub fn make_opaque(dir: &Path) -> Result<(), UnpackError> {
    xattr::set(dir, OPAQUE_XATTR, b"y").map_err(UnpackError::io("marking opaque", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names() {
        assert_eq!(classify(".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(classify(".wh..wh.plnk"), Whiteout::Meta);
        assert_eq!(classify(".wh.foo"), Whiteout::Remove("foo"));
        assert_eq!(classify(".wh."), Whiteout::Meta);
        assert_eq!(classify(".wh.."), Whiteout::Meta);
        assert_eq!(classify("foo.wh.bar"), Whiteout::No);
        assert_eq!(classify(".whx"), Whiteout::No);
    }
}
