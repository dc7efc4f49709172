//! The `--console-socket` of a terminal container: a unix socket the runtime connects to, to
//! hand over the pty master (SCM_RIGHTS). A path too long for sun_path is reached through
//! /proc/<monitor pid>/fd/<dir handle>/ (the runtime, another process, cannot use /proc/self).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Comfortably under sun_path's 108 bytes, NUL included.
const MAX_DIRECT_LEN: usize = 100;

pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    /// The socket file, removed on drop.
    path: PathBuf,
    /// The path the runtime connects to.
    for_runtime: PathBuf,
    _dir: Option<File>,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> Result<Self, String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what} the console socket {}: {e}", path.display());
        let _ = std::fs::remove_file(path);
        let (bind_path, for_runtime, dir) = if path.as_os_str().len() <= MAX_DIRECT_LEN {
            (path.to_path_buf(), path.to_path_buf(), None)
        } else {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(fail("naming", &"no parent directory"));
            };
            let dir = File::open(parent).map_err(|e| fail("opening the directory of", &e))?;
            let fd = dir.as_raw_fd();
            let bind = PathBuf::from(format!("/proc/self/fd/{fd}")).join(name);
            let other = PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id())).join(name);
            (bind, other, Some(dir))
        };
        let listener = UnixListener::bind(&bind_path).map_err(|e| fail("binding", &e))?;
        listener.set_nonblocking(true).map_err(|e| fail("configuring", &e))?;
        Ok(ConsoleSocket { listener, path: path.to_path_buf(), for_runtime, _dir: dir })
    }

    /// The path to give the runtime (`--console-socket`).
    pub fn runtime_path(&self) -> &Path {
        &self.for_runtime
    }

    /// The pty master the runtime sent (it has connected by the time `create` returns).
    pub fn receive(&self, timeout: Duration) -> Result<OwnedFd, String> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return Err("the runtime did not connect to the console socket".into()),
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("waiting on the console socket: {e}")),
            }
        }
        let (stream, _) = self.listener.accept().map_err(|e| format!("accepting on the console socket: {e}"))?;
        stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(timeout)))
            .map_err(|e| format!("configuring the console connection: {e}"))?;
        crius_sys::scm::recv_fd(&stream)
            .map(|(fd, _name)| fd)
            .map_err(|e| format!("receiving the pty master: {}", crate::error::chain(&e)))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::os::unix::net::UnixStream;

    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

    use super::*;

    fn send_a_fd(path: &Path) {
        let stream = UnixStream::connect(path).unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        let fds = [r.as_raw_fd()];
        sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(b"pty")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    }

    #[test]
    fn receives_over_short_and_long_paths() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["s", &"x".repeat(110)] {
            let parent = dir.path().join(sub);
            std::fs::create_dir_all(&parent).unwrap();
            let path = parent.join("console.sock");
            let socket = ConsoleSocket::bind(&path).unwrap();
            assert!(socket.runtime_path().as_os_str().len() <= MAX_DIRECT_LEN, "{}", socket.runtime_path().display());
            send_a_fd(socket.runtime_path());
            socket.receive(Duration::from_secs(5)).unwrap();
            drop(socket);
            assert!(!path.exists());
        }
    }

    #[test]
    fn nobody_connecting_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let socket = ConsoleSocket::bind(&dir.path().join("c.sock")).unwrap();
        assert!(socket.receive(Duration::from_millis(50)).unwrap_err().contains("did not connect"));
    }
}
