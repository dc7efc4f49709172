//! Unpacking real tars (built here) into temp dirs, as root: whiteouts, ownership, links,
//! devices, xattrs, and every way out of the layer refused.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::digest::sha256_of;

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn header(kind: tar::EntryType, mode: u32, uid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_000_000);
        h.set_size(0);
        h
    }
    fn dir(mut self, name: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }
    fn file(mut self, name: &str, data: &[u8], mode: u32, uid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, name, data).unwrap();
        self
    }
    /// Names written raw into the header, so `..` and absolute names reach the unpacker as is.
    fn raw_file(mut self, name: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, 0);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn dev(mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }
    fn xattr_file(mut self, name: &str, key: &str, value: &[u8]) -> Self {
        let k = format!("SCHILY.xattr.{key}");
        self.0.append_pax_extensions([(k.as_str(), value)]).unwrap();
        self.file(name, b"x", 0o644, 0)
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn unpack(tar: &[u8]) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
    let dir = tempfile::tempdir().unwrap();
    let r = unpack_layer(tar, dir.path(), None);
    (dir, r)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn files_dirs_owners_modes_and_diff_id() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let tar = Tar::new()
        .dir("etc/")
        .file("etc/passwd", b"root:x:0:0\n", 0o644, 0)
        .file("home/app/x", b"hi", 0o4750, 1000)
        .bytes();
    let (dir, r) = unpack(&tar);
    let r = r.unwrap();
    assert_eq!(r.diff_id, sha256_of(&tar));
    assert_eq!(r.compression, Compression::None);
    let root = dir.path();
    assert_eq!(fs::read(root.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
    let m = fs::metadata(root.join("home/app/x")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    assert_eq!(m.permissions().mode() & 0o7777, 0o4750, "setuid survives the chown");
    assert_eq!(m.mtime(), 1_000_000);
    assert_eq!(fs::metadata(root.join("etc")).unwrap().mtime(), 1_000_000, "dir times set last");
}

#[test]
fn gzip_and_zstd_layers() {
    let tar = Tar::new().file("a", b"compressed", 0o644, 0).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (blob, kind) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack_layer(&blob[..], dir.path(), Some(&sha256_of(&tar))).unwrap();
        assert_eq!(r.compression, kind);
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"compressed");
    }
}

#[test]
fn diff_id_mismatch_is_an_error() {
    let tar = Tar::new().file("a", b"1", 0o644, 0).bytes();
    let dir = tempfile::tempdir().unwrap();
    let err = unpack_layer(&tar[..], dir.path(), Some(&sha256_of(b"other"))).unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !is_root() {
        eprintln!("skipped: needs root for mknod and trusted xattrs");
        return;
    }
    let tar = Tar::new()
        .dir("etc/")
        .file("etc/.wh.motd", b"", 0o644, 0)
        .file("var/cache/.wh..wh..opq", b"", 0o644, 0)
        .file(".wh..wh.plnk", b"", 0o644, 0)
        .file("gone/.wh.deep", b"", 0o644, 0)
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    let root = dir.path();
    let m = fs::symlink_metadata(root.join("etc/motd")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(!root.join("etc/.wh.motd").exists());
    assert_eq!(xattr::get(root.join("var/cache"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    assert!(!root.join("var/cache/.wh..wh..opq").exists());
    assert!(!root.join(".wh..wh.plnk").exists());
    assert!(fs::symlink_metadata(root.join("gone/deep")).unwrap().file_type().is_char_device());
}

#[test]
fn links_devices_and_xattrs_are_kept() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tar = Tar::new()
        .file("bin/busybox", b"ELF", 0o755, 0)
        .link(tar::EntryType::Link, "bin/sh", "bin/busybox")
        .link(tar::EntryType::Symlink, "bin/ls", "busybox")
        .link(tar::EntryType::Symlink, "usr/bin/env", "/bin/busybox")
        .link(tar::EntryType::Symlink, "usr/lib/x", "../../bin/busybox")
        .dev("dev/null", tar::EntryType::Char, 1, 3)
        .dev("dev/loop0", tar::EntryType::Block, 7, 0)
        .dev("run/fifo", tar::EntryType::Fifo, 0, 0)
        .xattr_file(
            "cap",
            "security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        )
        .xattr_file("evil", "trusted.overlay.redirect", b"/etc")
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    let root = dir.path();
    let a = fs::metadata(root.join("bin/busybox")).unwrap();
    let b = fs::metadata(root.join("bin/sh")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink");
    assert_eq!(fs::read_link(root.join("bin/ls")).unwrap(), Path::new("busybox"));
    assert_eq!(fs::read_link(root.join("usr/bin/env")).unwrap(), Path::new("/bin/busybox"));
    let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::symlink_metadata(root.join("dev/loop0")).unwrap().file_type().is_block_device());
    assert!(fs::symlink_metadata(root.join("run/fifo")).unwrap().file_type().is_fifo());
    assert!(xattr::get(root.join("cap"), "security.capability").unwrap().is_some());
    assert!(
        xattr::get(root.join("evil"), "trusted.overlay.redirect").unwrap().is_none(),
        "overlay xattrs from a layer are dropped"
    );
}

#[test]
fn escapes_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", Tar::new().raw_file("../escaped").bytes()),
        ("absolute", Tar::new().raw_file("/tmp/escaped-by-crius-test").bytes()),
        (
            "write through symlink",
            Tar::new()
                .link(tar::EntryType::Symlink, "evil", outside.path().to_str().unwrap())
                .file("evil/victim", b"pwned", 0o644, 0)
                .bytes(),
        ),
        ("climbing symlink", Tar::new().link(tar::EntryType::Symlink, "a/b", "../../../etc/shadow").bytes()),
        ("absolute hardlink", Tar::new().link(tar::EntryType::Link, "passwd", "/etc/passwd").bytes()),
        ("dotdot hardlink", Tar::new().link(tar::EntryType::Link, "passwd", "../../etc/passwd").bytes()),
        (
            "hardlink through symlink",
            Tar::new()
                .link(tar::EntryType::Symlink, "etc", "/etc")
                .link(tar::EntryType::Link, "p", "etc/passwd")
                .bytes(),
        ),
        (
            "whiteout through symlink",
            Tar::new()
                .link(tar::EntryType::Symlink, "d", outside.path().to_str().unwrap())
                .file("d/.wh.victim", b"", 0o644, 0)
                .bytes(),
        ),
    ];
    for (name, tar) in cases {
        fs::write(&victim, b"safe").unwrap();
        let (dir, r) = unpack(&tar);
        let err = r.expect_err(name);
        assert!(matches!(err, UnpackError::Escape { .. }), "{name}: {err}");
        assert_eq!(fs::read(&victim).unwrap(), b"safe", "{name}");
        assert!(!dir.path().parent().unwrap().join("escaped").exists(), "{name}");
    }
    assert!(!Path::new("/tmp/escaped-by-crius-test").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tar = Tar::new()
        .file("a", b"one", 0o644, 0)
        .link(tar::EntryType::Symlink, "b", "a")
        .file("a", b"two", 0o644, 0)
        .file("b", b"not through the link", 0o644, 0)
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"two");
    assert!(!fs::symlink_metadata(dir.path().join("b")).unwrap().file_type().is_symlink());
}
