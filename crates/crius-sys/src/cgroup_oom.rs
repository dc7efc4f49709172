//! How many processes the kernel's OOM killer has killed in a cgroup: the `oom_kill` counter of
//! `memory.oom_control` (v1 memory hierarchy) or `memory.events` (v2). A container was OOM-killed
//! when its counter grew while it ran.

use std::path::{Path, PathBuf};

use crate::cgroups::CgroupLayout;
use crate::error::{Error, Result};

/// The file holding the counter for `cgroup` ("/a/b") under `layout`: the v1 memory hierarchy
/// when there is one (hybrid hosts keep memory on v1), else the cgroup2 mount.
pub fn oom_counter_file(layout: &CgroupLayout, cgroup: &str) -> Option<PathBuf> {
    let rel = cgroup.trim_start_matches('/');
    if let Some(memory) = layout.v1_hierarchy("memory") {
        return Some(memory.mount_point.join(rel).join("memory.oom_control"));
    }
    layout.unified.as_ref().map(|unified| unified.join(rel).join("memory.events"))
}

/// Reads the `oom_kill` counter from a `memory.oom_control` or `memory.events` file.
pub fn read_oom_kills(file: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("reading", file, e))?;
    Ok(parse_oom_kills(&text).unwrap_or(0))
}

/// The `oom_kill N` line of either file (both are "key value" lines); None without one (a
/// kernel older than 4.13 on v1).
pub fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("oom_kill")).then(|| words.next()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2() {
        assert_eq!(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), Some(3));
        assert_eq!(parse_oom_kills("low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n"), Some(1));
        assert_eq!(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn files_per_layout() {
        let hybrid =
            "35 31 0:32 / /R/memory rw - cgroup cgroup rw,memory\n41 31 0:38 / /R/unified rw - cgroup2 cgroup2 rw\n";
        let l = CgroupLayout::from_mountinfo(Path::new("/R"), hybrid).unwrap();
        assert_eq!(oom_counter_file(&l, "/k/c1").unwrap(), Path::new("/R/memory/k/c1/memory.oom_control"));
        let v2 = "50 31 0:40 / /R rw - cgroup2 cgroup2 rw\n";
        let l = CgroupLayout::from_mountinfo(Path::new("/R"), v2).unwrap();
        assert_eq!(oom_counter_file(&l, "/k/c1").unwrap(), Path::new("/R/k/c1/memory.events"));
    }

    #[test]
    fn reads_a_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "oom 1\noom_kill 2\n").unwrap();
        assert_eq!(read_oom_kills(&file).unwrap(), 2);
        assert!(read_oom_kills(&dir.path().join("missing")).unwrap_err().is_not_found());
    }
}
