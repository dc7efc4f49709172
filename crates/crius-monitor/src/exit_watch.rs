//! Calls back once when a process exits, through its pidfd: on the daemon's tokio runtime when
//! there is one (no thread per pod), else on a thread of its own.

use std::os::fd::OwnedFd;

use crius_core::sandbox::model::ProcRef;
use crius_sys::process::Pidfd;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub(crate) fn watch_exit(process: ProcRef, on_exit: Box<dyn FnOnce() + Send>) {
    let pidfd = match Pidfd::open_verified(process.pid, process.start_time) {
        Ok(Some(pidfd)) => pidfd,
        // Gone already (or the pid names someone else now): it has exited.
        Ok(None) => return on_exit(),
        Err(e) => {
            tracing::warn!(pid = process.pid, error = %e, "cannot watch the process; treating it as exited");
            return on_exit();
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                // SAFETY: an OwnedFd returns the same open descriptor for as long as it lives, and
                // the AsyncFd owns it.
                let registered = unsafe { AsyncFd::register_with_interest(OwnedFd::from(pidfd), Interest::READABLE) };
                match registered {
                    // A pidfd turns readable once, when the process exits, and stays so.
                    Ok(fd) => {
                        let _ = fd.readable().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot register a pidfd; treating the process as exited"),
                }
                on_exit();
            });
        }
        Err(_) => {
            let spawned = std::thread::Builder::new().name("crius-exit-watch".into()).spawn(move || {
                let _ = pidfd.wait_exit(None);
                on_exit();
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a thread to watch a process");
            }
        }
    }
}
