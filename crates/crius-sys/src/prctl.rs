//! The prctl(2) settings the monitor, the pod init and the daemon's helper processes rely on.

use std::os::unix::process::CommandExt;
use std::process::Command;

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

/// Makes the child that `command` spawns get SIGKILL when the spawning thread dies: a helper the
/// daemon waits on (a CNI plugin) must not outlive a daemon killed while it runs and finish its
/// work after the restart undid it. Spawn and wait on one thread: the kernel watches the
/// spawning thread, not the process. A daemon that died before the child set this up makes the
/// spawn fail instead.
pub fn kill_child_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the hook runs in the child between fork and exec; prctl(2) and getppid(2) are
    // async-signal-safe, and it allocates nothing and touches no memory of the parent's.
    unsafe {
        command.pre_exec(move || {
            prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The child of a thread that exits is killed with it.
    #[test]
    fn the_child_dies_with_the_spawning_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut command = Command::new("sleep");
            command.arg("30");
            kill_child_with_parent(&mut command);
            let child = command.spawn().unwrap();
            tx.send(child).unwrap();
        })
        .join()
        .unwrap();
        let mut child = rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(libc::SIGKILL));
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child outlived its parent thread");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
