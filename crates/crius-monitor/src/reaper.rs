//! Reaps the daemon's monitor processes in the background, so none is left a zombie: one thread
//! for all of them, sleeping in poll(2) on their pidfds (plus a wake-up pipe for new ones).

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::Child;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Mutex, OnceLock};

use crius_sys::process::Pidfd;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

struct Reaper {
    children: Mutex<Sender<Child>>,
    wake: Mutex<PipeWriter>,
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

/// Hands `child` over to be waited for once it exits.
pub(crate) fn adopt(mut child: Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    match REAPER.get_or_init(start) {
        Some(reaper) => {
            let sent = reaper.children.lock().map(|tx| tx.send(child).is_ok()).unwrap_or(false);
            if sent && let Ok(mut wake) = reaper.wake.lock() {
                // Non-blocking: a full pipe already means "wake up".
                let _ = wake.write(&[1]);
            }
        }
        None => {
            // No reaper thread could be started: a thread of its own for this one child.
            let _ = std::thread::Builder::new().name("crius-reap".into()).spawn(move || child.wait());
        }
    }
}

fn start() -> Option<Reaper> {
    let (reader, writer) = std::io::pipe().ok()?;
    fcntl(&writer, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ok()?;
    let (tx, rx) = channel();
    std::thread::Builder::new().name("crius-monitor-reaper".into()).spawn(move || run(rx, reader)).ok()?;
    Some(Reaper { children: Mutex::new(tx), wake: Mutex::new(writer) })
}

fn run(rx: Receiver<Child>, mut wake: PipeReader) {
    let mut children: Vec<(Child, Option<Pidfd>)> = Vec::new();
    loop {
        loop {
            match rx.try_recv() {
                Ok(child) => {
                    // The child is unreaped, so its pid is still its own.
                    let pidfd = i32::try_from(child.id()).ok().and_then(|pid| Pidfd::open(pid).ok());
                    children.push((child, pidfd));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        children.retain_mut(|(child, _)| matches!(child.try_wait(), Ok(None)));
        // Without a pidfd (should not happen on this kernel) fall back to checking every second.
        let timeout =
            if children.iter().any(|(_, p)| p.is_none()) { PollTimeout::from(1000u16) } else { PollTimeout::NONE };
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        fds.extend(children.iter().filter_map(|(_, p)| p.as_ref()).map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN)));
        let woken = poll(&mut fds, timeout).is_ok() && fds[0].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        if woken {
            let mut buf = [0u8; 256];
            let _ = wake.read(&mut buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn adopted_children_are_reaped() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        adopt(child);
        let slow = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let slow_pid = slow.id() as i32;
        adopt(slow);
        let deadline = Instant::now() + Duration::from_secs(5);
        // Reaped means /proc/PID is gone (or reused by another process, vanishingly unlikely).
        while (std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::path::Path::new(&format!("/proc/{slow_pid}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!std::path::Path::new(&format!("/proc/{slow_pid}")).exists());
    }
}
