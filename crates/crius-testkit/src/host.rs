//! Readers of the host's state: mounts (/proc/self/mountinfo), processes (/proc/PID), namespace
//! inodes and cgroup hierarchies. Plain functions so tests can use them directly.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u32,
    pub parent_id: u32,
    pub root: String,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 6 || fields.len() < sep + 3 {
            continue;
        }
        let (Ok(id), Ok(parent_id)) = (fields[0].parse(), fields[1].parse()) else {
            continue;
        };
        out.push(MountEntry {
            id,
            parent_id,
            root: unescape_octal(fields[3]),
            mount_point: PathBuf::from(unescape_octal(fields[4])),
            mount_options: fields[5].to_string(),
            fstype: fields[sep + 1].to_string(),
            source: unescape_octal(fields[sep + 2]),
            super_options: fields.get(sep + 3).unwrap_or(&"").to_string(),
        });
    }
    out
}

/// The mounts of this process's mount namespace, in mountinfo order (parents first).
pub fn mounts() -> Vec<MountEntry> {
    fs::read_to_string("/proc/self/mountinfo").map(|t| parse_mountinfo(&t)).unwrap_or_default()
}

/// Mounts at or below `dir` (component-wise), in mountinfo order.
pub fn mounts_under(dir: &Path) -> Vec<MountEntry> {
    mounts().into_iter().filter(|m| m.mount_point.starts_with(dir)).collect()
}

/// Whether something is mounted exactly at `path`.
pub fn mount_at(path: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.mount_point == path)
}

/// Lazily unmounts every mount at or below `dir`, deepest and newest first, until none is left
/// (a few rounds at most). Returns what could not be unmounted.
pub fn unmount_all_under(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for _ in 0..8 {
        let mut ms = mounts_under(dir);
        if ms.is_empty() {
            return Vec::new();
        }
        // Deepest first; among equals, newest (stacked on top) first.
        ms.sort_by(|a, b| {
            let da = a.mount_point.components().count();
            let db = b.mount_point.components().count();
            db.cmp(&da).then(b.id.cmp(&a.id))
        });
        errors.clear();
        for m in ms {
            if let Err(e) = nix::mount::umount2(&m.mount_point, nix::mount::MntFlags::MNT_DETACH) {
                errors.push(format!("umount {}: {e}", m.mount_point.display()));
            }
        }
    }
    let left = mounts_under(dir);
    if left.is_empty() { Vec::new() } else { errors }
}

/// What /proc/PID/stat says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// Clock ticks since boot (field 22).
    pub start_time: u64,
}

pub fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), rest[1] field 4 (ppid), rest[19] field 22 (starttime).
    Some(ProcStat {
        pid,
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// The process's command line, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Every pid in /proc.
pub fn pids() -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                out.push(pid);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Whether the process exists and is not a zombie; with `start_time`, also that it is the same
/// process (not a reused pid).
pub fn process_alive(pid: i32, start_time: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some(st) => st.state != 'Z' && start_time.is_none_or(|t| t == st.start_time),
        None => false,
    }
}

/// Waits until the process is gone (or a zombie), up to `timeout`.
pub fn wait_process_gone(pid: i32, start_time: Option<u64>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid, start_time) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The namespace kinds a process has links for, as named under /proc/PID/ns.
pub const NS_KINDS: &[&str] = &["net", "ipc", "uts", "pid", "mnt", "cgroup"];

/// The inode of a process's namespace of `kind` ("net:[4026531840]" → 4026531840).
pub fn ns_inode_of_pid(pid: i32, kind: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    let s = link.to_str()?;
    let start = s.find('[')? + 1;
    let end = s.rfind(']')?;
    s.get(start..end)?.parse().ok()
}

fn nsfs_dev() -> Option<u64> {
    fs::metadata("/proc/self/ns/net").ok().map(|m| m.dev())
}

/// The namespace inode behind a pinned path (a bind mount of an nsfs file), or None when the
/// path is not a namespace (missing, or an empty file left after the unmount).
pub fn ns_inode_of_path(path: &Path) -> Option<u64> {
    let md = fs::metadata(path).ok()?;
    if Some(md.dev()) == nsfs_dev() { Some(md.ino()) } else { None }
}

/// The host's own namespace inodes (this process's and PID 1's), which must never be taken as
/// a pod's.
pub fn host_ns_inodes() -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for pid in [std::process::id() as i32, 1] {
        for kind in NS_KINDS {
            if let Some(i) = ns_inode_of_pid(pid, kind) {
                out.insert(i);
            }
        }
    }
    out
}

/// Whether the process is in the same namespace of `kind` as this test process.
pub fn same_ns_as_self(pid: i32, kind: &str) -> bool {
    match (ns_inode_of_pid(pid, kind), ns_inode_of_pid(std::process::id() as i32, kind)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The "NSpid:" line of /proc/PID/status: the pid in each nested pid namespace, outermost first.
pub fn ns_pids(pid: i32) -> Vec<i32> {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return vec![];
    };
    text.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|rest| rest.split_whitespace().filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_default()
}

/// Parent pid of every live process.
pub fn ppid_map() -> HashMap<i32, i32> {
    pids().into_iter().filter_map(|p| proc_stat(p).map(|s| (p, s.ppid))).collect()
}

/// Mount points of the cgroup hierarchies (v1 controllers and the v2 unified one).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    mounts().into_iter().filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2").map(|m| m.mount_point).collect()
}

/// Whether the host runs cgroup v2 only (unified at /sys/fs/cgroup).
pub fn cgroup_v2_unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of cgroup `rel` (like "/parent/pod-id") in the hierarchy tests look at: the v1
/// memory controller where there is one, else the v2 unified tree.
pub fn cgroup_dir(rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if cgroup_v2_unified() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup/memory").join(rel)
    }
}

/// The pids in a cgroup directory (cgroup.procs).
pub fn cgroup_procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Every cgroup directory at or below `dir`, deepest first.
pub fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut out);
    }
    out
}

/// Kills every process in the cgroup tree at `dir` and removes its directories, deepest first.
/// Returns what could not be removed.
pub fn remove_cgroup_tree(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for _ in 0..50 {
        errors.clear();
        let tree = cgroup_tree(dir);
        if tree.is_empty() {
            return errors;
        }
        for d in &tree {
            for pid in cgroup_procs(d) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        for d in &tree {
            if let Err(e) = fs::remove_dir(d)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                errors.push(format!("rmdir {}: {e}", d.display()));
            }
        }
        if errors.is_empty() {
            return errors;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 36 0:22 / /run/x rw - tmpfs tmpfs rw,size=65536k\n";
        let ms = parse_mountinfo(text);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].mount_point, PathBuf::from("/mnt two"));
        assert_eq!(ms[0].fstype, "ext3");
        assert_eq!(ms[1].fstype, "tmpfs");
        assert_eq!(ms[1].super_options, "rw,size=65536k");
        assert_eq!(ms[1].parent_id, 36);
    }

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let st =
            parse_stat(42, "42 (a b) c) S 7 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 100").unwrap();
        assert_eq!(st.comm, "a b) c");
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 7);
        assert_eq!(st.start_time, 12345);
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id() as i32;
        assert!(process_alive(me, None));
        assert!(ns_inode_of_pid(me, "net").is_some());
        assert!(!ns_pids(me).is_empty());
        assert!(host_ns_inodes().len() >= NS_KINDS.len().min(4));
        assert!(same_ns_as_self(me, "net"));
    }
}
