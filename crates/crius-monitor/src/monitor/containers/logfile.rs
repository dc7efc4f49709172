//! A container's CRI log file: opened for append (created with its directory if needed), and
//! reopened by path when the kubelet has renamed it for rotation. The monitor is one thread, so
//! a reopen falls between two writes: every line lands in the old file or the new one.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::super::log::log;

pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    /// A write failed (disk full?): said once in the monitor's log, not for every line.
    failing: bool,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(LogFile { path: path.to_path_buf(), file: open(path)?, failing: false })
    }

    /// Opens the path anew; the old file stays in use if that fails.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open(&self.path)?;
        self.failing = false;
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.file.write_all(bytes) {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    log!(
                        "writing the container log {} failed: {e}; dropping output until it works",
                        self.path.display()
                    );
                }
                self.failing = true;
            }
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(0o640).custom_flags(libc::O_CLOEXEC).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_appends_and_reopens_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pods/p/c/0.log");
        let mut log = LogFile::open(&path).unwrap();
        log.write(b"one\n");
        std::fs::rename(&path, dir.path().join("rotated")).unwrap();
        log.write(b"two\n");
        log.reopen().unwrap();
        log.write(b"three\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("rotated")).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
