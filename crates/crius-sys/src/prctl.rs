//! The two prctl(2) settings the monitor and the pod init rely on.

use nix::sys::prctl;
use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// Asks the kernel to send `signal` when the thread that created this process dies. Note it is
/// the creating *thread*: only use it from a child of a single-threaded parent.
pub fn set_pdeathsig(signal: Signal) -> Result<()> {
    prctl::set_pdeathsig(signal).map_err(|errno| Error::Syscall { op: "prctl(PR_SET_PDEATHSIG)", errno })
}

/// Makes orphaned descendants (containers whose runc has exited) reparent to this process
/// rather than to the host's PID 1, so it can reap them and record their exit.
pub fn set_child_subreaper() -> Result<()> {
    prctl::set_child_subreaper(true).map_err(|errno| Error::Syscall { op: "prctl(PR_SET_CHILD_SUBREAPER)", errno })
}
