//! Processes identified by pid *and* start time, and pidfds, so that a signal never reaches a
//! process that merely reused a recorded pid.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// The fields of /proc/PID/stat crius uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// R, S, D, Z (zombie), X (dead), ...
    pub state: char,
    pub ppid: i32,
    /// Field 22: clock ticks since boot.
    pub start_time: u64,
}

/// Parses /proc/PID/stat. The command name (field 2) is in parentheses and may itself contain
/// spaces and ')', so the fields are counted from the *last* ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    // Fields from 3 on: state (3), ppid (4), ..., starttime (22).
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start_time = fields.nth(22 - 5)?.parse().ok()?;
    Some(ProcStat { state, ppid, start_time })
}

/// Reads /proc/PID/stat; None when the process does not exist (or /proc cannot be read).
pub fn read_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The start time of `pid` in clock ticks since boot (/proc/PID/stat field 22).
pub fn proc_start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.start_time)
}

/// Whether `pid` is still the process that started at `start_time` and has not exited (a zombie
/// has exited: it only waits for its parent to collect the status).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    read_stat(pid).is_some_and(|s| s.start_time == start_time && !matches!(s.state, 'Z' | 'X' | 'x'))
}

/// A process file descriptor: signals sent through it reach that process or nobody.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// pidfd_open(2) of `pid`, whatever process it is now.
    pub fn open(pid: i32) -> Result<Pidfd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no memory
        // is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Error::Process { op: "pidfd_open", pid, errno: Errno::last() });
        }
        let fd = RawFd::try_from(fd).map_err(|_| Error::Process { op: "pidfd_open", pid, errno: Errno::EBADF })?;
        // SAFETY: the kernel just returned this descriptor, nothing else owns it.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// A pidfd for the process `pid` only if it is still the one that started at `start_time`;
    /// None when it has gone (or the pid now names another process). The pidfd is opened
    /// first and the start time read after: if it still matches, the pidfd refers to the
    /// recorded process, since a pid is not reused while that process is unreaped.
    pub fn open_verified(pid: i32, start_time: u64) -> Result<Option<Pidfd>> {
        if pid <= 0 {
            return Ok(None);
        }
        let pidfd = match Pidfd::open(pid) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok((proc_start_time(pid) == Some(start_time)).then_some(pidfd))
    }

    /// Sends `signal`; Ok(false) when the process has already exited.
    pub fn send_signal(&self, signal: Signal) -> Result<bool> {
        // SAFETY: pidfd_send_signal with a valid pidfd we own, a null siginfo (the kernel fills
        // in the default) and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        match Errno::last() {
            Errno::ESRCH => Ok(false),
            errno => Err(Error::Syscall { op: "pidfd_send_signal", errno }),
        }
    }

    /// Waits until the process has exited (the pidfd turns readable), at most `timeout` (None:
    /// no limit); Ok(false) on timeout.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let poll_timeout = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    PollTimeout::from(u16::try_from(left.as_millis()).unwrap_or(u16::MAX))
                }
                None => PollTimeout::NONE,
            };
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, poll_timeout) {
                Ok(0) if deadline.is_some_and(|d| Instant::now() >= d) => return Ok(false),
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(true),
                Err(errno) => return Err(Error::Syscall { op: "poll on a pidfd", errno }),
            }
        }
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl From<Pidfd> for OwnedFd {
    fn from(p: Pidfd) -> OwnedFd {
        p.0
    }
}

/// SIGKILLs the process (pid, start_time) if it is still that process. Ok(false) when it was
/// already gone: nothing else is ever signalled.
pub fn kill_verified(pid: i32, start_time: u64) -> Result<bool> {
    match Pidfd::open_verified(pid, start_time)? {
        Some(pidfd) => pidfd.send_signal(Signal::SIGKILL),
        None => Ok(false),
    }
}

/// SIGKILLs the process (pid, start_time) if it is still that process and waits up to `timeout`
/// for it to exit. Ok(true) when it is gone (or was already).
pub fn kill_verified_and_wait(pid: i32, start_time: u64, timeout: Duration) -> Result<bool> {
    match Pidfd::open_verified(pid, start_time)? {
        Some(pidfd) => {
            pidfd.send_signal(Signal::SIGKILL)?;
            pidfd.wait_exit(Some(timeout))
        }
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(comm: &str) -> String {
        // 52 fields, as the kernel writes them; starttime (22) is 987654.
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        fields[1] = "41".into();
        fields[22 - 3] = "987654".into();
        format!("1234 ({comm}) {}\n", fields.join(" "))
    }

    #[test]
    fn parses_start_time_and_state() {
        let s = parse_stat(&stat_line("bash")).unwrap();
        assert_eq!(s, ProcStat { state: 'S', ppid: 41, start_time: 987654 });
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        for comm in ["a b", "x) 1 2 3 (y", ") )", "(((", "", "tab\there"] {
            let s = parse_stat(&stat_line(comm)).unwrap();
            assert_eq!(s.start_time, 987654, "comm {comm:?}");
            assert_eq!(s.ppid, 41);
        }
    }

    #[test]
    fn truncated_or_garbage_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        let line = stat_line("x").replace("987654", "notanumber");
        assert_eq!(parse_stat(&line), None);
    }

    #[test]
    fn own_process_is_alive_and_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let start = proc_start_time(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1));
        assert!(!is_alive(0, start));
        assert!(!is_alive(-1, start));
    }

    #[test]
    fn kill_verified_spares_a_mismatched_start_time() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let start = proc_start_time(pid).unwrap();
        assert!(!kill_verified(pid, start + 1).unwrap());
        assert!(is_alive(pid, start));
        assert!(kill_verified_and_wait(pid, start, Duration::from_secs(5)).unwrap());
        child.wait().unwrap();
        assert!(!is_alive(pid, start));
        assert!(!kill_verified(pid, start).unwrap());
    }
}
