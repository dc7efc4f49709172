//! Disk usage of a directory tree, as `du` counts it: allocated blocks and inodes, each inode
//! once (hard links), without following symlinks or crossing into other mounts.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::files::is_gone;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Allocated bytes (st_blocks * 512), so sparse files count what they hold.
    pub bytes: u64,
    pub inodes: u64,
}

/// The usage of `root` and everything below it on the same filesystem. A file removed while the
/// tree is walked is skipped (a running container changes its layer); `Ok(None)` when `root`
/// itself does not exist.
pub fn disk_usage(root: &Path) -> Result<Option<DiskUsage>> {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(Error::Io { op: "reading the metadata of", path: root.into(), source: e }),
    };
    let dev = meta.dev();
    let mut usage = DiskUsage::default();
    let mut seen = HashSet::new();
    count(&meta, &mut usage, &mut seen);
    // An explicit stack: layer trees can be deeper than a thread's stack allows for recursion.
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(Error::Io { op: "listing", path: dir, source: e }),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != dev {
                continue;
            }
            count(&meta, &mut usage, &mut seen);
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(Some(usage))
}

fn count(meta: &std::fs::Metadata, usage: &mut DiskUsage, seen: &mut HashSet<u64>) {
    // Only files with more than one link can be met twice.
    if meta.nlink() > 1 && !meta.is_dir() && !seen.insert(meta.ino()) {
        return;
    }
    usage.bytes = usage.bytes.saturating_add(meta.blocks().saturating_mul(512));
    usage.inodes += 1;
}
