//! Small readers of cgroup files: a missing file (or a cgroup removed while it is read) is
//! `None`, anything else unreadable is an error.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `cgroup` ("/a/b") under a hierarchy mount.
pub(crate) fn join(mount: &Path, cgroup: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if rel.is_empty() { mount.to_path_buf() } else { mount.join(rel) }
}

/// A cgroup file's text; None when the file (or its cgroup) is gone. ENODEV is what the kernel
/// answers for a file of a cgroup being removed.
pub(crate) fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(Error::Io { op: "reading", path: path.to_path_buf(), source: e }),
    }
}

pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

/// A file holding one number ("max" is None, like a missing file).
pub(crate) fn read_u64(path: &Path) -> Result<Option<u64>> {
    Ok(read(path)?.and_then(|t| parse_u64(t.trim())))
}

pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat, memory.events) as a map; lines that
/// do not parse are skipped.
pub(crate) fn parse_flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let key = parts.next()?;
            let value = parts.next()?.parse().ok()?;
            Some((key, value))
        })
        .collect()
}

pub(crate) fn read_flat_keyed(path: &Path) -> Result<Option<HashMap<String, u64>>> {
    Ok(read(path)?.map(|t| parse_flat_keyed(&t).into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A limit: None when unlimited ("max" in v2, a huge number in v1).
pub(crate) fn limit(value: Option<u64>) -> Option<u64> {
    value.filter(|v| *v < super::UNLIMITED_THRESHOLD)
}

/// Processes in `dir` and every cgroup below it (for hierarchies without pids.current).
pub(crate) fn count_procs_recursive(dir: &Path) -> Result<Option<u64>> {
    let Some(text) = read(&dir.join("cgroup.procs"))? else { return Ok(None) };
    let mut count = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_gone(&e) => return Ok(Some(count)),
        Err(e) => return Err(Error::Io { op: "listing", path: dir.to_path_buf(), source: e }),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            count += count_procs_recursive(&entry.path())?.unwrap_or(0);
        }
    }
    Ok(Some(count))
}
