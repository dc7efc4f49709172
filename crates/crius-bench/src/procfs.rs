//! Memory and process facts from /proc: a process's Rss and Pss (smaps_rollup), the process
//! that owns a listening unix socket, and the per-pod helper processes of a runtime.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

/// Resident and proportional set sizes, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl Mem {
    pub fn add(&mut self, other: Mem) {
        self.rss_kib += other.rss_kib;
        self.pss_kib += other.pss_kib;
    }
}

pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Parses /proc/PID/smaps_rollup (the "Rss:" and "Pss:" lines, in kB). None when either is
/// missing.
pub fn parse_smaps_rollup(text: &str) -> Option<Mem> {
    let mut rss = None;
    let mut pss = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else { continue };
        let slot = match key {
            "Rss:" => &mut rss,
            "Pss:" => &mut pss,
            _ => continue,
        };
        if slot.is_none() {
            *slot = value.parse::<u64>().ok();
        }
    }
    Some(Mem { rss_kib: rss?, pss_kib: pss? })
}

/// Rss and Pss of a live process; None when it is gone (or unreadable).
pub fn memory_of(pid: i32) -> Option<Mem> {
    parse_smaps_rollup(&fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
}

/// The inodes of the *listening* unix sockets bound to `path`, from /proc/net/unix text.
/// A line: `Num RefCount Protocol Flags Type St Inode [Path]`; listening sockets have the
/// __SO_ACCEPTCON flag (0x10000).
pub fn listening_inodes(proc_net_unix: &str, path: &Path) -> Vec<u64> {
    let want = path.to_string_lossy();
    let mut inodes = Vec::new();
    for line in proc_net_unix.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags = u64::from_str_radix(fields[3], 16).unwrap_or(0);
        if flags & 0x10000 == 0 {
            continue;
        }
        let bound = fields[7..].join(" ");
        if bound == want
            && let Ok(inode) = fields[6].parse()
        {
            inodes.push(inode);
        }
    }
    inodes
}

/// The pid of the process listening on the unix socket `path` (the daemon serving it). When
/// several processes hold the socket (inherited descriptors), the eldest ancestor among them.
pub fn socket_owner(path: &Path) -> Option<i32> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let table = fs::read_to_string("/proc/net/unix").ok()?;
    let inodes: HashSet<String> =
        listening_inodes(&table, &path).into_iter().map(|i| format!("socket:[{i}]")).collect();
    if inodes.is_empty() {
        return None;
    }
    let mut holders = Vec::new();
    for pid in pids() {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path())
                && inodes.contains(target.to_string_lossy().as_ref())
            {
                holders.push(pid);
                break;
            }
        }
    }
    let procs = snapshot();
    let ppid: HashMap<i32, i32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    holders.iter().copied().find(|h| !holders.contains(ppid.get(h).unwrap_or(&0))).or(holders.first().copied())
}

fn pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// One process: its parent, argv and comm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub argv: Vec<String>,
    pub comm: String,
}

/// The ppid field of /proc/PID/stat (after the parenthesised comm, which may hold spaces and
/// parentheses itself).
pub fn parse_stat_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of /proc/PID/stat, in ms (the kernel reports them in USER_HZ = 100 ticks per
/// second on every Linux architecture).
pub fn parse_stat_cpu_ms(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 * 10.0)
}

/// CPU time a live process has used so far, in ms.
pub fn cpu_ms_of(pid: i32) -> Option<f64> {
    parse_stat_cpu_ms(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// argv from /proc/PID/cmdline (NUL-separated, NUL-terminated).
pub fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect()
}

/// Every process now (those that vanish while being read are left out).
pub fn snapshot() -> Vec<Proc> {
    let mut procs = Vec::new();
    for pid in pids() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(ppid) = parse_stat_ppid(&stat) else { continue };
        let argv = fs::read(format!("/proc/{pid}/cmdline")).map(|raw| parse_cmdline(&raw)).unwrap_or_default();
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_string();
        procs.push(Proc { pid, ppid, argv, comm });
    }
    procs
}

/// Whether a process matches a helper pattern: the pattern's words appear contiguously in argv
/// (argv[0] compared by its file name), or a one-word pattern equals the process's comm.
/// "crius monitor" matches `/usr/bin/crius monitor --pod-id X`; "containerd-shim-runc-v2"
/// matches `/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id X`.
pub fn matches_pattern(proc: &Proc, pattern: &str) -> bool {
    let words: Vec<&str> = pattern.split_whitespace().collect();
    if words.is_empty() {
        return false;
    }
    if words.len() == 1 && proc.comm == words[0] {
        return true;
    }
    let argv: Vec<&str> = proc
        .argv
        .iter()
        .enumerate()
        .map(|(i, a)| if i == 0 { a.rsplit('/').next().unwrap_or(a) } else { a.as_str() })
        .collect();
    argv.windows(words.len()).any(|w| w == words.as_slice())
}

/// The pod id a helper root serves: one of `pod_ids` appearing in its argv as a word (or as the
/// value of a `--flag=value` word).
fn pod_of<'a>(proc: &Proc, pod_ids: &'a HashSet<String>) -> Option<&'a String> {
    proc.argv.iter().skip(1).find_map(|a| {
        let value = a.rsplit_once('=').map_or(a.as_str(), |(_, v)| v);
        pod_ids.get(value)
    })
}

/// The helper processes of each pod: roots are processes matching one of `patterns` whose argv
/// names one of `pod_ids`; each root brings all its descendants (the pod init, or the pause
/// process). Processes of pods not in `pod_ids` (other runs, other daemons) are ignored.
pub fn helper_groups(procs: &[Proc], patterns: &[String], pod_ids: &HashSet<String>) -> BTreeMap<String, Vec<i32>> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut groups: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for p in procs {
        if !patterns.iter().any(|pat| matches_pattern(p, pat)) {
            continue;
        }
        let Some(pod) = pod_of(p, pod_ids) else { continue };
        let group = groups.entry(pod.clone()).or_default();
        let mut stack = vec![p.pid];
        while let Some(pid) = stack.pop() {
            if !seen.insert(pid) {
                continue;
            }
            group.push(pid);
            if let Some(kids) = children.get(&pid) {
                stack.extend(kids);
            }
        }
    }
    for pids in groups.values_mut() {
        pids.sort_unstable();
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLUP: &str = "\
55d0c0a8e000-7ffd3a5f3000 ---p 00000000 00:00 0                          [rollup]
Rss:                4512 kB
Pss:                1234 kB
Pss_Dirty:           900 kB
Pss_Anon:            800 kB
Pss_File:            434 kB
Pss_Shmem:             0 kB
Shared_Clean:       3000 kB
Private_Dirty:       900 kB
Swap:                  0 kB
SwapPss:               0 kB
";

    #[test]
    fn smaps_rollup_rss_and_pss() {
        assert_eq!(parse_smaps_rollup(ROLLUP), Some(Mem { rss_kib: 4512, pss_kib: 1234 }));
        assert_eq!(parse_smaps_rollup("Rss: 10 kB\n"), None);
        assert_eq!(parse_smaps_rollup(""), None);
    }

    #[test]
    fn own_smaps_rollup_is_readable() {
        let m = memory_of(std::process::id() as i32).expect("own smaps_rollup");
        assert!(m.rss_kib > 0 && m.pss_kib > 0 && m.pss_kib <= m.rss_kib, "{m:?}");
    }

    #[test]
    fn mem_adds_and_converts() {
        let mut m = Mem { rss_kib: 1024, pss_kib: 512 };
        m.add(Mem { rss_kib: 1024, pss_kib: 512 });
        assert_eq!(m, Mem { rss_kib: 2048, pss_kib: 1024 });
        assert_eq!(kib_to_mib(m.pss_kib), 1.0);
    }

    const NET_UNIX: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 41001 /run/crius/crius.sock
0000000000000000: 00000003 00000000 00000000 0001 03 41002 /run/crius/crius.sock
0000000000000000: 00000002 00000000 00010000 0001 01 41003 /tmp/with space.sock
0000000000000000: 00000002 00000000 00000000 0002 01 41004
0000000000000000: 00000002 00000000 00010000 0001 01 41005 /run/other.sock
";

    #[test]
    fn listening_socket_inodes_by_path() {
        assert_eq!(listening_inodes(NET_UNIX, Path::new("/run/crius/crius.sock")), vec![41001]);
        assert_eq!(listening_inodes(NET_UNIX, Path::new("/tmp/with space.sock")), vec![41003]);
        assert!(listening_inodes(NET_UNIX, Path::new("/nope.sock")).is_empty());
    }

    #[test]
    fn socket_owner_finds_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(socket_owner(&path), Some(std::process::id() as i32));
        assert_eq!(socket_owner(&dir.path().join("absent.sock")), None);
    }

    #[test]
    fn stat_ppid_after_tricky_comm() {
        assert_eq!(parse_stat_ppid("1234 (crius) S 77 1234 1234 0 -1"), Some(77));
        assert_eq!(parse_stat_ppid("1234 (a) b (c) R 9 1 1"), Some(9));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn stat_cpu_time() {
        let stat = "1234 (cri us) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat_cpu_ms(stat), Some(1750.0));
        assert_eq!(parse_stat_cpu_ms("1 (x) S 1"), None);
        assert!(cpu_ms_of(std::process::id() as i32).is_some());
    }

    #[test]
    fn cmdline_words() {
        assert_eq!(parse_cmdline(b"crius\0monitor\0--pod-id\0abc\0"), vec!["crius", "monitor", "--pod-id", "abc"]);
        assert!(parse_cmdline(b"").is_empty());
    }

    fn p(pid: i32, ppid: i32, argv: &str, comm: &str) -> Proc {
        Proc { pid, ppid, argv: argv.split_whitespace().map(String::from).collect(), comm: comm.into() }
    }

    #[test]
    fn patterns_match_argv_words_or_comm() {
        let monitor = p(10, 1, "/usr/local/bin/crius monitor --run-dir /r --pod-id aaa", "crius");
        assert!(matches_pattern(&monitor, "crius monitor"));
        assert!(matches_pattern(&monitor, "monitor"));
        assert!(matches_pattern(&monitor, "crius"));
        assert!(!matches_pattern(&monitor, "monitor crius"));
        assert!(!matches_pattern(&monitor, "containerd-shim-runc-v2"));
        assert!(!matches_pattern(&monitor, ""));
        let shim =
            p(20, 1, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id bbb -address /x", "containerd-shim");
        assert!(matches_pattern(&shim, "containerd-shim-runc-v2"));
        assert!(matches_pattern(&shim, "containerd-shim"), "comm match");
        // A word inside a path is not a match.
        assert!(!matches_pattern(&p(1, 0, "/crius/monitorx", "x"), "monitor"));
    }

    #[test]
    fn helpers_group_roots_and_descendants_by_pod() {
        let procs = vec![
            p(1, 0, "init", "init"),
            p(10, 1, "/bin/crius monitor --run-dir /r --pod-id aaa", "crius"),
            p(11, 10, "/bin/crius monitor --run-dir /r --pod-id aaa", "crius"), // pod init (fork)
            p(12, 11, "/pause", "pause"),
            p(20, 1, "/bin/crius monitor --pod-id=bbb", "crius"),
            p(30, 1, "/bin/crius monitor --pod-id zzz", "crius"), // another run's pod
            p(40, 1, "/bin/crius daemon --listen aaa", "crius"),  // names aaa, not a helper
            p(50, 1, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id aaa", "containerd-shim"),
        ];
        let pods: HashSet<String> = ["aaa", "bbb"].into_iter().map(String::from).collect();
        let groups = helper_groups(&procs, &["crius monitor".to_string()], &pods);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups["aaa"], vec![10, 11, 12]);
        assert_eq!(groups["bbb"], vec![20]);
        let shims = helper_groups(&procs, &["containerd-shim-runc-v2".to_string()], &pods);
        assert_eq!(shims.into_iter().collect::<Vec<_>>(), vec![("aaa".to_string(), vec![50])]);
        assert!(helper_groups(&procs, &[], &pods).is_empty());
    }
}
