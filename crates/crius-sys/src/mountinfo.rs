//! /proc/self/mountinfo, parsed: the one source for "is this a mount point" and for finding the
//! cgroup hierarchies.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One line of mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    /// The path inside the mounted filesystem that is the root of this mount.
    pub root: String,
    pub mount_point: PathBuf,
    pub mount_options: String,
    /// The optional fields, e.g. "shared:12" or "master:3".
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    /// Whether the mount propagates to and from a peer group.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    /// Whether the mount receives propagation from a master peer group (a slave mount).
    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }

    /// The super options as a list ("rw", "cpu", "name=systemd", ...).
    pub fn super_option_list(&self) -> impl Iterator<Item = &str> {
        self.super_options.split(',').filter(|o| !o.is_empty())
    }
}

pub const SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// Reads and parses the calling process's mount table.
pub fn read_self() -> Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string(SELF_MOUNTINFO).map_err(|e| Error::io("reading", SELF_MOUNTINFO, e))?;
    Ok(parse(&text))
}

/// Parses mountinfo text; malformed lines are skipped (the kernel does not write any, and a
/// fixture with a stray line should not make everything fail).
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let _major_minor = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = PathBuf::from(OsString::from_vec(unescape_bytes(fields.next()?)));
    let mount_options = fields.next()?.to_string();
    let mut optional = Vec::new();
    loop {
        let field = fields.next()?;
        if field == "-" {
            break;
        }
        optional.push(field.to_string());
    }
    let fs_type = fields.next()?.to_string();
    let source = unescape(fields.next()?);
    let super_options = fields.next().unwrap_or_default().to_string();
    Some(MountEntry { mount_id, parent_id, root, mount_point, mount_options, optional, fs_type, source, super_options })
}

/// The kernel escapes space, tab, newline and backslash as \ooo (octal).
fn unescape(field: &str) -> String {
    String::from_utf8_lossy(&unescape_bytes(field)).into_owned()
}

fn unescape_bytes(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(value) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether `path` (absolute, already canonical) is the mount point of some entry.
pub fn is_mount_point_in(path: &Path, entries: &[MountEntry]) -> bool {
    entries.iter().any(|e| e.mount_point == path)
}

/// The entry visible at `path` (the last one mounted there), if it is a mount point.
pub fn entry_at<'a>(path: &Path, entries: &'a [MountEntry]) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == path)
}

/// The mount that `path` (absolute, already canonical) is on: the entry with the longest mount
/// point that is `path` or one of its ancestors, and of those the last mounted (the one on top).
/// This is containerd's `LookupMount`, which its propagation checks use.
pub fn containing<'a>(path: &Path, entries: &'a [MountEntry]) -> Option<&'a MountEntry> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| path.starts_with(&e.mount_point))
        .max_by_key(|(i, e)| (e.mount_point.components().count(), *i))
        .map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 27 0:4 net:[4026532281] /run/my\\040dir/x rw master:1 shared:7 - nsfs nsfs rw
garbage line
";

    #[test]
    fn parses_fields_and_optional_tags() {
        let e = parse(SAMPLE);
        assert_eq!(e.len(), 6);
        assert_eq!(e[2].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(e[2].fs_type, "cgroup");
        assert_eq!(e[2].super_options, "rw,cpu");
        assert!(e[2].is_shared());
        assert!(!e[0].is_shared());
        assert_eq!(e[3].super_option_list().collect::<Vec<_>>(), ["rw", "name=systemd"]);
        assert_eq!(e[5].optional, ["master:1", "shared:7"]);
        assert_eq!(e[5].root, "net:[4026532281]");
    }

    #[test]
    fn unescapes_octal_in_paths() {
        let e = parse(SAMPLE);
        assert_eq!(e[5].mount_point, Path::new("/run/my dir/x"));
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("trailing\\"), "trailing\\");
        assert_eq!(unescape("short\\04"), "short\\04");
    }

    #[test]
    fn finds_mount_points() {
        let e = parse(SAMPLE);
        assert!(is_mount_point_in(Path::new("/sys/fs/cgroup/unified"), &e));
        assert!(!is_mount_point_in(Path::new("/sys/fs"), &e));
        assert_eq!(entry_at(Path::new("/proc"), &e).map(|m| m.mount_id), Some(22));
    }

    #[test]
    fn finds_the_mount_a_path_is_on() {
        let text = "\
1 0 8:1 / / rw - ext4 /dev/sda1 rw
2 1 0:5 / /data rw shared:3 - ext4 /dev/sdb1 rw
3 2 0:6 / /data/sub rw master:3 - tmpfs tmpfs rw
4 2 0:7 / /data/sub rw - tmpfs tmpfs rw
5 1 0:8 / /database rw - tmpfs tmpfs rw
";
        let e = parse(text);
        let on = |p: &str| containing(Path::new(p), &e).map(|m| m.mount_id);
        assert_eq!(on("/"), Some(1));
        assert_eq!(on("/etc/passwd"), Some(1));
        assert_eq!(on("/data"), Some(2));
        assert_eq!(on("/data/x/y"), Some(2));
        // Component-wise: /database is not under /data.
        assert_eq!(on("/database/x"), Some(5));
        // Of two mounts stacked at one place, the later is the one seen.
        assert_eq!(on("/data/sub/f"), Some(4));
        assert!(e[1].is_shared() && !e[1].is_slave());
        assert!(e[2].is_slave() && !e[2].is_shared());
        assert_eq!(containing(Path::new("/x"), &e[1..]), None);
    }
}
