//! Reads a child's stdout and stderr pipes together (poll, no threads), each up to a cap: what
//! is past the cap is read and dropped so the writer never blocks on a full pipe.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use crius_sys::process::Pidfd;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Why [`Capture::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Both pipes reached end of file.
    Closed,
    /// The watched process exited (its pipes may still be open in its descendants).
    Exited,
    Deadline,
}

struct Stream {
    file: Option<File>,
    data: Vec<u8>,
    dropped: u64,
}

impl Stream {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        let flags = fcntl(&fd, FcntlArg::F_GETFL)?;
        fcntl(&fd, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK))?;
        Ok(Stream { file: Some(File::from(fd)), data: Vec::new(), dropped: 0 })
    }

    /// Reads until the pipe would block or ends.
    fn read_available(&mut self, cap: usize, chunk: &mut [u8]) {
        while let Some(file) = self.file.as_mut() {
            match file.read(chunk) {
                Ok(0) => self.file = None,
                Ok(n) => {
                    let room = cap.saturating_sub(self.data.len()).min(n);
                    self.data.extend_from_slice(&chunk[..room]);
                    self.dropped += (n - room) as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.file = None,
            }
        }
    }
}

pub(crate) struct Capture {
    streams: [Stream; 2],
    cap: usize,
    chunk: Vec<u8>,
}

/// What was read from one stream.
pub(crate) struct Captured {
    pub data: Vec<u8>,
    /// Bytes read past the cap and dropped.
    pub dropped: u64,
}

impl Capture {
    pub fn new(stdout: impl Into<OwnedFd>, stderr: impl Into<OwnedFd>, cap: usize) -> io::Result<Self> {
        Ok(Capture {
            streams: [Stream::new(stdout.into())?, Stream::new(stderr.into())?],
            cap,
            chunk: vec![0u8; 64 * 1024],
        })
    }

    /// Reads both pipes until both are closed, `exited` turns readable (the process is gone), or
    /// `deadline` passes.
    pub fn run(&mut self, exited: Option<&Pidfd>, deadline: Option<Instant>) -> Stop {
        loop {
            if self.streams.iter().all(|s| s.file.is_none()) {
                return Stop::Closed;
            }
            let timeout = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Stop::Deadline;
                    }
                    // Rounded up, so a deadline 0.4 ms away does not spin.
                    PollTimeout::from(u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX))
                }
                None => PollTimeout::NONE,
            };
            let (ready, process_gone) = {
                let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
                let mut which = Vec::with_capacity(2);
                for (i, stream) in self.streams.iter().enumerate() {
                    if let Some(file) = &stream.file {
                        fds.push(PollFd::new(file.as_fd(), PollFlags::POLLIN));
                        which.push(i);
                    }
                }
                if let Some(pidfd) = exited {
                    fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    // poll on valid descriptors does not fail otherwise; treat it as the end.
                    Err(_) => return Stop::Closed,
                }
                let is_ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                let ready: Vec<usize> =
                    which.iter().zip(&fds).filter(|(_, fd)| is_ready(fd)).map(|(i, _)| *i).collect();
                let gone = exited.is_some() && fds.last().is_some_and(is_ready);
                (ready, gone)
            };
            for i in ready {
                self.streams[i].read_available(self.cap, &mut self.chunk);
            }
            if process_gone {
                self.drain_now();
                return Stop::Exited;
            }
        }
    }

    /// Reads whatever the pipes hold right now, without waiting for more.
    pub fn drain_now(&mut self) {
        for stream in &mut self.streams {
            stream.read_available(self.cap, &mut self.chunk);
        }
    }

    pub fn finish(self) -> [Captured; 2] {
        self.streams.map(|s| Captured { data: s.data, dropped: s.dropped })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    #[test]
    fn both_streams_up_to_the_cap() {
        let (out_r, mut out_w) = std::io::pipe().unwrap();
        let (err_r, mut err_w) = std::io::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            out_w.write_all(&vec![b'o'; 200_000]).unwrap();
            err_w.write_all(b"err").unwrap();
        });
        let mut capture = Capture::new(out_r, err_r, 100_000).unwrap();
        assert_eq!(capture.run(None, Some(Instant::now() + Duration::from_secs(10))), Stop::Closed);
        writer.join().unwrap();
        let [out, err] = capture.finish();
        assert_eq!((out.data.len(), out.dropped), (100_000, 100_000));
        assert_eq!((err.data.as_slice(), err.dropped), (&b"err"[..], 0));
    }

    #[test]
    fn deadline_with_open_pipes() {
        let (out_r, _out_w) = std::io::pipe().unwrap();
        let (err_r, _err_w) = std::io::pipe().unwrap();
        let mut capture = Capture::new(out_r, err_r, 10).unwrap();
        let start = Instant::now();
        assert_eq!(capture.run(None, Some(start + Duration::from_millis(100))), Stop::Deadline);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn exit_of_the_process_ends_it_even_with_pipes_held_elsewhere() {
        let (out_r, mut out_w) = std::io::pipe().unwrap();
        let (err_r, _err_w) = std::io::pipe().unwrap();
        out_w.write_all(b"before exit").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = Pidfd::open(child.id() as i32).unwrap();
        let mut capture = Capture::new(out_r, err_r, 1024).unwrap();
        assert_eq!(capture.run(Some(&pidfd), Some(Instant::now() + Duration::from_secs(10))), Stop::Exited);
        child.wait().unwrap();
        assert_eq!(capture.finish()[0].data, b"before exit");
    }
}
