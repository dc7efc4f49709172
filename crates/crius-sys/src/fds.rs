//! File descriptor hygiene for processes that must hold nothing they did not ask for.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};

use crate::error::{Error, Result};

/// Closes every descriptor from 3 up, except those in `keep`.
pub fn close_all_except(keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&fd| u32::try_from(fd).ok()).filter(|&fd| fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep {
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<()> {
    // SAFETY: close_range only closes descriptors; the caller has chosen to give up every
    // descriptor in the range (nothing in this process uses them afterwards).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc != 0 {
        return Err(Error::Syscall { op: "close_range", errno: Errno::last() });
    }
    Ok(())
}

/// Points stdin, stdout and stderr at /dev/null (rather than closing them, so that a later open
/// cannot become fd 2 and receive stray writes).
pub fn stdio_to_dev_null() -> Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("opening", "/dev/null", e))?;
    redirect_stdin(&null)?;
    redirect_stdout(&null)?;
    redirect_stderr(&null)
}

/// Replaces stdin with `fd`.
pub fn redirect_stdin(fd: impl AsFd) -> Result<()> {
    dup2_stdin(fd).map_err(|errno| Error::Syscall { op: "dup2 onto stdin", errno })
}

/// Replaces stdout with `fd`.
pub fn redirect_stdout(fd: impl AsFd) -> Result<()> {
    dup2_stdout(fd).map_err(|errno| Error::Syscall { op: "dup2 onto stdout", errno })
}

/// Replaces stderr with `fd`.
pub fn redirect_stderr(fd: impl AsFd) -> Result<()> {
    dup2_stderr(fd).map_err(|errno| Error::Syscall { op: "dup2 onto stderr", errno })
}

/// The descriptors this process holds, from /proc/self/fd (for tests and diagnostics).
pub fn open_fds() -> Result<Vec<RawFd>> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| Error::io("listing", "/proc/self/fd", e))?;
    let mut fds: Vec<RawFd> =
        dir.filter_map(|e| e.ok()).filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect();
    fds.sort_unstable();
    Ok(fds)
}

/// Whether `fd` is open in this process.
pub fn is_open(fd: impl AsRawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) != -1 }
}
