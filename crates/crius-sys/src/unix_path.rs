//! Unix socket paths longer than sun_path (108 bytes) — a deep state directory plus a 64-character
//! pod id — reach the socket through /proc/self/fd/N/<name>, where N is an open handle on its
//! directory. Bind and connect both accept that short form.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Comfortably under sun_path's 108 bytes, NUL included.
const MAX_DIRECT_LEN: usize = 100;

/// A path usable for bind/connect; keep it alive until the call is done.
pub struct SocketPath {
    path: PathBuf,
    _dir: Option<File>,
}

impl SocketPath {
    pub fn new(path: &Path) -> Result<SocketPath> {
        if path.as_os_str().len() <= MAX_DIRECT_LEN {
            return Ok(SocketPath { path: path.to_path_buf(), _dir: None });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::io("shortening the socket path", path, std::io::Error::other("no parent")));
        };
        let handle = File::open(dir).map_err(|e| Error::io("opening the socket's directory", dir, e))?;
        let short = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())).join(name);
        Ok(SocketPath { path: short, _dir: Some(handle) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn short_paths_are_kept() {
        let p = SocketPath::new(Path::new("/run/crius/x.sock")).unwrap();
        assert_eq!(p.path(), Path::new("/run/crius/x.sock"));
    }

    #[test]
    fn long_paths_bind_and_connect() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join("monitor.sock");
        assert!(socket.as_os_str().len() > 108);
        let listener = UnixListener::bind(SocketPath::new(&socket).unwrap().path()).unwrap();
        assert!(socket.exists(), "the socket lands at the long path");
        let _client = UnixStream::connect(SocketPath::new(&socket).unwrap().path()).unwrap();
        listener.accept().unwrap();
    }
}
