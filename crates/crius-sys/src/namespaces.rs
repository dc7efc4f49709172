//! Creating a process in new namespaces, and the few things done inside them (hostname, `lo`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// A kind of namespace crius creates for a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NsKind {
    Net,
    Ipc,
    Uts,
    Pid,
}

impl NsKind {
    pub const ALL: [NsKind; 4] = [NsKind::Net, NsKind::Ipc, NsKind::Uts, NsKind::Pid];

    /// The name used by /proc/PID/ns/<name> (and by crius's pin directories).
    pub fn name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Pid => "pid",
        }
    }

    fn clone_flag(self) -> CloneFlags {
        match self {
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
            NsKind::Pid => CloneFlags::CLONE_NEWPID,
        }
    }
}

/// /proc/PID/ns/<kind>: the file to bind mount to pin that process's namespace.
pub fn proc_ns_path(pid: i32, kind: NsKind) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{}", kind.name()))
}

/// Which new namespaces a process is created in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceSet {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub pid: bool,
}

impl NamespaceSet {
    pub fn contains(&self, kind: NsKind) -> bool {
        match kind {
            NsKind::Net => self.net,
            NsKind::Ipc => self.ipc,
            NsKind::Uts => self.uts,
            NsKind::Pid => self.pid,
        }
    }

    /// The kinds in the set, in a fixed order.
    pub fn kinds(&self) -> impl Iterator<Item = NsKind> + '_ {
        NsKind::ALL.into_iter().filter(|k| self.contains(*k))
    }

    fn clone_flags(&self) -> CloneFlags {
        self.kinds().fold(CloneFlags::empty(), |flags, k| flags | k.clone_flag())
    }
}

/// Stack for the cloned child. It is a copy-on-write copy of the parent's memory, so pages the
/// child never touches cost nothing; the size only bounds how deep the child may recurse.
const CHILD_STACK_BYTES: usize = 512 * 1024;

/// Creates a child process in the new namespaces `ns` (it is PID 1 of a new PID namespace)
/// that runs `child` and exits with its return value; the parent gets SIGCHLD when it exits.
///
/// Like fork(2), this is only sound in a single-threaded process (a lock held by another thread
/// would stay locked forever in the child), so it refuses to run in any other.
pub fn spawn_in_namespaces<F>(ns: NamespaceSet, child: F) -> Result<Pid>
where
    F: FnOnce() -> i32,
{
    let threads = thread_count()?;
    if threads != 1 {
        return Err(Error::NotSingleThreaded { op: "clone", threads });
    }
    let mut child = Some(child);
    let mut stack = vec![0u8; CHILD_STACK_BYTES];
    let callback: Box<dyn FnMut() -> isize + '_> =
        Box::new(move || child.take().map_or(127, |f| isize::try_from(f()).unwrap_or(1)));
    // SAFETY: the process is single-threaded (checked above), so the child's copy of memory has
    // no lock held by a thread that does not exist in it; without CLONE_VM the child runs on its
    // own copy of `stack`, which the parent may free after clone returns.
    let pid = unsafe { nix::sched::clone(callback, &mut stack, ns.clone_flags(), Some(Signal::SIGCHLD as i32)) };
    pid.map_err(|errno| Error::Syscall { op: "clone into new namespaces", errno })
}

/// The number of threads of this process, from /proc/self/status.
pub fn thread_count() -> Result<usize> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|e| Error::io("reading", "/proc/self/status", e))?;
    Ok(status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0))
}

/// Sets the hostname of the caller's UTS namespace.
pub fn set_hostname(name: &str) -> Result<()> {
    nix::unistd::sethostname(name).map_err(|errno| Error::Syscall { op: "sethostname", errno })
}

/// Sets IFF_UP on the interface `name` of the caller's network namespace.
pub fn set_link_up(name: &str) -> Result<()> {
    let (sock, mut req) = read_link_flags(name)?;
    // SAFETY: SIOCGIFFLAGS (in read_link_flags) filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the `ifreq` we own, which has a NUL-terminated name.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Error::Interface { name: name.to_string(), op: "SIOCSIFFLAGS", errno: Errno::last() });
    }
    Ok(())
}

/// Whether the interface `name` has IFF_UP set, in the caller's network namespace.
pub fn link_is_up(name: &str) -> Result<bool> {
    let (_sock, req) = read_link_flags(name)?;
    // SAFETY: SIOCGIFFLAGS (in read_link_flags) filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(flags & libc::IFF_UP as libc::c_short != 0)
}

/// An AF_INET socket (the handle for interface ioctls) and the interface's flags (SIOCGIFFLAGS).
fn read_link_flags(name: &str) -> Result<(OwnedFd, libc::ifreq)> {
    let err = |op, errno| Error::Interface { name: name.to_string(), op, errno };
    let mut req = ifreq_for(name).ok_or_else(|| err("name too long or empty", Errno::EINVAL))?;
    // SAFETY: socket(2) with constant arguments; the result is checked and then owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(err("socket", Errno::last()));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: SIOCGIFFLAGS writes into the `ifreq` we own, which has a NUL-terminated name.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(err("SIOCGIFFLAGS", Errno::last()));
    }
    Ok((sock, req))
}

fn ifreq_for(name: &str) -> Option<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return None;
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value (an empty name, no flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_set_kinds_and_flags() {
        let all = NamespaceSet { net: true, ipc: true, uts: true, pid: true };
        assert_eq!(all.kinds().map(NsKind::name).collect::<Vec<_>>(), ["net", "ipc", "uts", "pid"]);
        let some = NamespaceSet { net: true, pid: true, ..Default::default() };
        assert_eq!(some.clone_flags(), CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID);
        assert_eq!(NamespaceSet::default().clone_flags(), CloneFlags::empty());
        assert_eq!(proc_ns_path(42, NsKind::Uts), PathBuf::from("/proc/42/ns/uts"));
    }

    #[test]
    fn interface_names_are_bounded() {
        assert!(ifreq_for("lo").is_some());
        assert!(ifreq_for("").is_none());
        assert!(ifreq_for("a-very-long-interface-name").is_none());
        assert!(ifreq_for("nul\0").is_none());
    }

    #[test]
    fn clone_refuses_in_a_threaded_process() {
        // The test harness runs tests on threads, so this process has more than one.
        let _other = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let err = spawn_in_namespaces(NamespaceSet::default(), || 0).unwrap_err();
        assert!(matches!(err, Error::NotSingleThreaded { .. }), "{err}");
    }

    #[test]
    fn host_loopback_is_up() {
        assert!(link_is_up("lo").unwrap());
        assert!(link_is_up("nosuchif0").is_err());
    }
}
