//! Bytes (allocated blocks, as du counts them) and inodes under a directory, each inode once.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// A missing directory uses nothing. Unreadable entries are skipped: usage is a report.
pub fn du(path: &Path) -> Usage {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    walk(path, &mut seen, &mut usage);
    usage
}

fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>, usage: &mut Usage) {
    let Ok(m) = fs::symlink_metadata(path) else { return };
    if seen.insert((m.dev(), m.ino())) {
        usage.bytes += m.blocks() * 512;
        usage.inodes += 1;
    }
    if m.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for e in entries.flatten() {
            walk(&e.path(), seen, usage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hardlinks_once() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        let before = du(dir.path());
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        let after = du(dir.path());
        assert_eq!(before, after);
        assert_eq!(after.inodes, 2);
        assert!(after.bytes >= 64 * 1024);
        assert_eq!(du(&dir.path().join("missing")), Usage::default());
    }
}
