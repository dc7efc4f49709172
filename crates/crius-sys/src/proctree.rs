//! Process trees from /proc, and killing a whole tree without losing a process that forks while
//! it is being killed: the tree is stopped (SIGSTOP) until a fresh scan finds nothing new, then
//! killed. A stopped process cannot fork, and one that dies first would hand its children to a
//! reaper outside the tree, where no scan from the root would find them.

use std::collections::{HashMap, HashSet};

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::process::{Pidfd, read_stat};

/// Rounds of stop-and-rescan before giving up on a tree that keeps growing.
const MAX_ROUNDS: usize = 16;

/// A process by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcId {
    pub pid: i32,
    pub start_time: u64,
}

/// Every live process's parent, from one scan of /proc.
fn parents() -> Result<HashMap<i32, Vec<ProcId>>> {
    let dir = std::fs::read_dir("/proc").map_err(|e| Error::io("listing", "/proc", e))?;
    let mut children: HashMap<i32, Vec<ProcId>> = HashMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if let Some(stat) = read_stat(pid) {
            children.entry(stat.ppid).or_default().push(ProcId { pid, start_time: stat.start_time });
        }
    }
    Ok(children)
}

/// The processes below `pid` (children, their children, ...), parents before children.
pub fn descendants(pid: i32) -> Result<Vec<ProcId>> {
    let children = parents()?;
    let mut found = Vec::new();
    let mut queue = vec![pid];
    let mut seen = HashSet::from([pid]);
    while let Some(parent) = queue.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            if seen.insert(child.pid) {
                found.push(*child);
                queue.push(child.pid);
            }
        }
    }
    Ok(found)
}

/// SIGKILLs `root` (if it is still the process that started at `start_time`) and every process
/// below it. Returns how many processes were killed (0: the root was already gone).
pub fn kill_tree(root: ProcId) -> Result<usize> {
    let Some(root_fd) = Pidfd::open_verified(root.pid, root.start_time)? else {
        return Ok(0);
    };
    let mut held: Vec<Pidfd> = Vec::new();
    let mut known: HashSet<ProcId> = HashSet::new();
    root_fd.send_signal(Signal::SIGSTOP)?;
    for _ in 0..MAX_ROUNDS {
        let mut new = 0;
        for p in descendants(root.pid)? {
            if known.insert(p)
                && let Some(fd) = Pidfd::open_verified(p.pid, p.start_time)?
            {
                // Gone meanwhile (Ok(false)) is fine: it forks no more.
                fd.send_signal(Signal::SIGSTOP)?;
                held.push(fd);
                new += 1;
            }
        }
        if new == 0 {
            break;
        }
    }
    let mut killed = usize::from(root_fd.send_signal(Signal::SIGKILL)?);
    for fd in &held {
        killed += usize::from(fd.send_signal(Signal::SIGKILL)?);
    }
    Ok(killed)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::process::{is_alive, proc_start_time};

    #[test]
    fn kills_a_forking_tree() {
        // sh -> (sh -> sleep) x2, plus a loop that keeps forking.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "(sleep 300 & sleep 300) & (while true; do sleep 0.01; done) & sleep 300; wait"])
            .spawn()
            .unwrap();
        let root = ProcId { pid: child.id() as i32, start_time: proc_start_time(child.id() as i32).unwrap() };
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(root.pid).unwrap().len() < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let tree = descendants(root.pid).unwrap();
        assert!(tree.len() >= 4, "{tree:?}");
        let killed = kill_tree(root).unwrap();
        assert!(killed >= 5, "{killed}");
        child.wait().unwrap();
        // The rest were reparented to our reaper (init, or a subreaper) and die there.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree.iter().any(|p| is_alive(p.pid, p.start_time)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(tree.iter().all(|p| !is_alive(p.pid, p.start_time)), "left: {tree:?}");
        assert_eq!(kill_tree(root).unwrap(), 0);
    }
}
