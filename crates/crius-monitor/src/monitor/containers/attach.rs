//! One attach client of a container: a connection on the monitor's socket that gets the
//! container's output as frames and sends stdin, stdin-close and resize frames
//! ([`crate::attach_wire`]). Never blocks the monitor's loop: output waits in a bounded buffer
//! (a client that falls further behind is dropped, the log never waits for it), and a client's
//! stdin is read only as fast as the container takes it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;

use crate::attach_wire::{self, FrameReader, Kind};
use crate::crilog::Stream;

/// Output a client may have waiting before it is dropped.
const MAX_PENDING_OUTPUT: usize = 4 << 20;
/// One read of a client's frames.
const READ_CHUNK: usize = 16 * 1024;
/// How long the last output may take to reach a client once its container is done.
const FINAL_FLUSH: Duration = Duration::from_millis(500);

/// Which of the container's streams the client wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wants {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// What the client asked of the container, as its frames are read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// Its stdin ended (or it went away with stdin attached).
    StdinClosed,
    Resize(u16, u16),
}

pub(crate) struct Attachment {
    pub serial: u64,
    stream: UnixStream,
    wants: Wants,
    /// Frames not yet written to the client.
    output: Vec<u8>,
    frames: FrameReader,
    /// Stdin bytes read from the client that the container has not taken yet; while any are
    /// here, no more frames are read (backpressure).
    stdin: Vec<u8>,
    stdin_closed: bool,
    /// The client shut down its sending side: no more frames, but output still goes to it.
    input_ended: bool,
    gone: bool,
}

impl Attachment {
    pub fn new(serial: u64, stream: UnixStream, wants: Wants) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Attachment {
            serial,
            stream,
            wants,
            output: Vec::new(),
            frames: FrameReader::default(),
            stdin: Vec::new(),
            stdin_closed: !wants.stdin,
            input_ended: false,
            gone: false,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// Whether to poll the connection for reading: only while no stdin waits for the container.
    pub fn wants_input(&self) -> bool {
        !self.gone && !self.input_ended && self.stdin.is_empty()
    }

    pub fn wants_write(&self) -> bool {
        !self.gone && !self.output.is_empty()
    }

    pub fn has_pending_stdin(&self) -> bool {
        !self.gone && !self.stdin.is_empty()
    }

    /// The container printed `data` on `stream`.
    pub fn send_output(&mut self, stream: Stream, data: &[u8]) {
        let (wanted, kind) = match stream {
            Stream::Stdout => (self.wants.stdout, Kind::Stdout),
            Stream::Stderr => (self.wants.stderr, Kind::Stderr),
        };
        if !wanted || self.gone {
            return;
        }
        attach_wire::encode(kind, data, &mut self.output);
        self.flush();
        if self.output.len() > MAX_PENDING_OUTPUT {
            super::super::log::log!(
                "an attach client fell {} bytes behind the container's output: dropping it",
                self.output.len()
            );
            self.gone = true;
        }
    }

    /// Writes what the connection takes now.
    pub fn flush(&mut self) {
        while !self.output.is_empty() && !self.gone {
            match self.stream.write(&self.output) {
                Ok(0) => self.gone = true,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.gone = true,
            }
        }
        if self.output.is_empty() && self.output.capacity() > READ_CHUNK {
            self.output = Vec::new();
        }
    }

    /// The container is done: its last output goes out (briefly waiting), then the connection
    /// closes, which ends the client's session.
    pub fn finish(mut self) {
        if self.gone || self.output.is_empty() {
            return;
        }
        let blocking =
            self.stream.set_nonblocking(false).and_then(|()| self.stream.set_write_timeout(Some(FINAL_FLUSH)));
        if blocking.is_ok() {
            let _ = self.stream.write_all(&self.output);
        }
    }

    /// Reads the client's frames; stdin bytes collect for [`Attachment::write_stdin`], the
    /// rest comes back. End of input is a half-close: the client still gets output. A client
    /// that hung up (`hung_up`: the poll said so) or broke the protocol is gone. Either way,
    /// with stdin attached, its stdin is closed.
    pub fn read_input(&mut self, buf: &mut [u8], hung_up: bool) -> Vec<Input> {
        let mut inputs = Vec::new();
        if self.gone {
            return inputs;
        }
        if !self.input_ended {
            let limit = buf.len().min(READ_CHUNK);
            match self.stream.read(&mut buf[..limit]) {
                Ok(0) => self.input_ended = true,
                Ok(n) => self.frames.push(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
                Err(_) => self.gone = true,
            }
        }
        self.take_frames(&mut inputs);
        self.gone |= hung_up;
        if (self.gone || self.input_ended) && !self.stdin_closed {
            self.stdin_closed = true;
            inputs.push(Input::StdinClosed);
        }
        inputs
    }

    /// Frames already read, up to the first stdin bytes the container has yet to take.
    fn take_frames(&mut self, inputs: &mut Vec<Input>) {
        while self.stdin.is_empty() {
            match self.frames.next_frame() {
                Ok(None) => return,
                Ok(Some((Kind::Stdin, data))) => {
                    if !self.stdin_closed {
                        self.stdin = data;
                    }
                }
                Ok(Some((Kind::StdinClose, _))) => {
                    if !self.stdin_closed {
                        self.stdin_closed = true;
                        inputs.push(Input::StdinClosed);
                    }
                }
                Ok(Some((Kind::Resize, payload))) => {
                    if let Some((w, h)) = attach_wire::decode_resize(&payload) {
                        inputs.push(Input::Resize(w, h));
                    }
                }
                Ok(Some((Kind::Stdout | Kind::Stderr, _))) | Err(_) => {
                    super::super::log::log!("an attach client sent a malformed frame: dropping it");
                    self.gone = true;
                    return;
                }
            }
        }
    }

    /// Writes waiting stdin to the container's stdin (`None`: it has none, or it was closed:
    /// the bytes are dropped), then takes the frames that waited behind it.
    pub fn write_stdin(&mut self, target: Option<BorrowedFd<'_>>) -> Vec<Input> {
        let mut inputs = Vec::new();
        while !self.stdin.is_empty() {
            let Some(fd) = target else {
                self.stdin.clear();
                break;
            };
            match nix::unistd::write(fd, &self.stdin) {
                Ok(n) => {
                    self.stdin.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return inputs,
                // The container closed its end: nothing more it will read.
                Err(_) => self.stdin.clear(),
            }
        }
        self.stdin = Vec::new();
        self.take_frames(&mut inputs);
        inputs
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;

    fn pair(wants: Wants) -> (Attachment, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Attachment::new(1, a, wants).unwrap(), b)
    }

    const ALL: Wants = Wants { stdin: true, stdout: true, stderr: true };

    fn frames_from(peer: &mut UnixStream) -> Vec<(Kind, Vec<u8>)> {
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut r = FrameReader::default();
        let mut buf = [0u8; 4096];
        let n = peer.read(&mut buf).unwrap();
        r.push(&buf[..n]);
        std::iter::from_fn(|| r.next_frame().unwrap()).collect()
    }

    #[test]
    fn output_goes_to_the_streams_asked_for() {
        let (mut a, mut peer) = pair(Wants { stdin: false, stdout: true, stderr: false });
        a.send_output(Stream::Stderr, b"not wanted");
        a.send_output(Stream::Stdout, b"hello");
        assert_eq!(frames_from(&mut peer), vec![(Kind::Stdout, b"hello".to_vec())]);
    }

    #[test]
    fn stdin_waits_for_the_container_and_close_comes_after_it() {
        let (mut a, mut peer) = pair(ALL);
        let (r, w) = std::io::pipe().unwrap();
        let w = OwnedFd::from(w);
        let mut wire = Vec::new();
        attach_wire::encode(Kind::Stdin, b"abc", &mut wire);
        attach_wire::encode_resize(100, 30, &mut wire);
        attach_wire::encode(Kind::StdinClose, b"", &mut wire);
        peer.write_all(&wire).unwrap();
        let mut buf = vec![0u8; 4096];
        // The stdin bytes come first; the frames behind them wait until they are written.
        assert_eq!(a.read_input(&mut buf, false), vec![]);
        assert!(a.has_pending_stdin() && !a.wants_input());
        assert_eq!(a.write_stdin(Some(w.as_fd())), vec![Input::Resize(100, 30), Input::StdinClosed]);
        drop(w);
        let mut got = String::new();
        std::io::BufReader::new(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "abc");
        // Stdin after the close is ignored.
        let mut wire = Vec::new();
        attach_wire::encode(Kind::Stdin, b"late", &mut wire);
        peer.write_all(&wire).unwrap();
        assert_eq!(a.read_input(&mut buf, false), vec![]);
        assert!(!a.has_pending_stdin());
    }

    #[test]
    fn a_client_that_leaves_closes_its_stdin_once() {
        let (mut a, peer) = pair(ALL);
        drop(peer);
        let mut buf = vec![0u8; 64];
        assert_eq!(a.read_input(&mut buf, true), vec![Input::StdinClosed]);
        assert!(a.is_gone());
        assert_eq!(a.read_input(&mut buf, true), vec![]);

        let (mut b, peer) = pair(Wants { stdin: false, stdout: true, stderr: true });
        drop(peer);
        assert_eq!(b.read_input(&mut buf, true), vec![], "no stdin attached: nothing to close");
    }

    #[test]
    fn a_half_close_ends_the_input_but_not_the_output() {
        let (mut a, mut peer) = pair(ALL);
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let mut buf = vec![0u8; 64];
        assert_eq!(a.read_input(&mut buf, false), vec![Input::StdinClosed]);
        assert!(!a.is_gone() && !a.wants_input());
        a.send_output(Stream::Stdout, b"still here");
        assert_eq!(frames_from(&mut peer), vec![(Kind::Stdout, b"still here".to_vec())]);
    }

    #[test]
    fn a_client_that_falls_behind_is_dropped_and_a_bad_frame_too() {
        let (mut a, _peer) = pair(ALL);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_PENDING_OUTPUT / chunk.len() + 64) {
            a.send_output(Stream::Stdout, &chunk);
        }
        assert!(a.is_gone());

        let (mut b, mut peer) = pair(ALL);
        peer.write_all(&[9, 0, 0, 0, 0]).unwrap();
        let mut buf = vec![0u8; 64];
        assert_eq!(b.read_input(&mut buf, false), vec![Input::StdinClosed]);
        assert!(b.is_gone());
    }
}
