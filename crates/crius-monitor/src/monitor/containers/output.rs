//! One output stream of a container (a stdout or stderr pipe, or the pty master of a terminal
//! container), read without blocking and turned into CRI log lines.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::crilog::{self, Encoder, Stream};

/// Reads per readiness before giving the other descriptors a turn (a chatty container must not
/// starve the rest of the loop).
const READS_PER_TURN: usize = 8;

pub(crate) struct Output {
    /// None once the stream has ended.
    file: Option<File>,
    stream: Stream,
    encoder: Encoder,
}

impl Output {
    pub fn new(fd: OwnedFd, stream: Stream) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        Ok(Output { file: Some(File::from(fd)), stream, encoder: Encoder::new(stream) })
    }

    pub fn stream(&self) -> Stream {
        self.stream
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(|f| f.as_fd())
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Reads what is there (a few reads at most), appending log lines to `lines` and handing
    /// each read to `tap` as it is (for attach clients). At the end of the stream, an unfinished
    /// line is logged as partial.
    pub fn pump(&mut self, buf: &mut [u8], lines: &mut Vec<u8>, mut tap: impl FnMut(&[u8])) {
        for _ in 0..READS_PER_TURN {
            let Some(file) = self.file.as_mut() else { return };
            match file.read(buf) {
                Ok(0) => self.close(lines),
                Ok(n) => {
                    tap(&buf[..n]);
                    let ts = crilog::timestamp(SystemTime::now());
                    self.encoder.feed(&buf[..n], &ts, lines);
                    if n < buf.len() {
                        // Short read: the pipe is empty for now.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A pty master reads EIO once the last slave is closed: the end.
                Err(_) => self.close(lines),
            }
        }
    }

    /// Reads what is there as is, not as log lines (the runtime's own message after a failed
    /// create, which went to the container's stderr).
    pub fn read_raw(&mut self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4096];
        while let Some(file) = self.file.as_mut() {
            match file.read(&mut buf) {
                Ok(0) => self.file = None,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
            if out.len() > 64 * 1024 {
                return;
            }
        }
    }

    fn close(&mut self, lines: &mut Vec<u8>) {
        self.file = None;
        self.encoder.finish(&crilog::timestamp(SystemTime::now()), lines);
    }
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    fcntl(fd, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn pumps_lines_and_ends_with_a_partial() {
        let (r, mut w) = std::io::pipe().unwrap();
        let mut out = Output::new(OwnedFd::from(r), Stream::Stderr).unwrap();
        let mut buf = vec![0u8; 1024];
        let mut lines = Vec::new();
        out.pump(&mut buf, &mut lines, |_| {});
        assert!(lines.is_empty() && out.is_open());
        w.write_all(b"a\nb").unwrap();
        out.pump(&mut buf, &mut lines, |_| {});
        drop(w);
        out.pump(&mut buf, &mut lines, |_| {});
        assert!(!out.is_open());
        let text = String::from_utf8(lines).unwrap();
        let parsed: Vec<_> =
            text.lines().map(|l| crilog::parse_line(l).unwrap()).map(|(_, s, p, c)| (s, p, c)).collect();
        assert_eq!(parsed, [("stderr", false, "a"), ("stderr", true, "b")]);
    }
}
