//! Newline-delimited reading from a descriptor, without read-ahead surprises: what is read stays
//! in this buffer, so a poll on the descriptor never misses a line already taken from it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use crate::protocol::MAX_LINE;

pub(crate) struct LineReader {
    file: File,
    buf: Vec<u8>,
    eof: bool,
}

impl LineReader {
    pub fn new(file: File) -> Self {
        LineReader { file, buf: Vec::new(), eof: false }
    }

    /// Blocks until a whole line (returned without its newline) or end of input (None; a partial
    /// last line is dropped: the writer died mid-line).
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// One read(2); call it when poll reports the descriptor readable.
    pub fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = loop {
            match self.file.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        if self.buf.len() > MAX_LINE && !self.buf.contains(&b'\n') {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("line longer than {MAX_LINE} bytes")));
        }
        Ok(())
    }

    /// A whole line already buffered, if any.
    pub fn take_line(&mut self) -> Option<String> {
        let end = self.buf.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.buf.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    pub fn at_eof(&self) -> bool {
        self.eof
    }
}

impl AsFd for LineReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn lines_then_eof() {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(b"one\r\ntwo\npartial").unwrap();
        drop(w);
        let mut lines = LineReader::new(File::from(std::os::fd::OwnedFd::from(r)));
        assert_eq!(lines.read_line().unwrap().as_deref(), Some("one"));
        assert_eq!(lines.read_line().unwrap().as_deref(), Some("two"));
        assert_eq!(lines.read_line().unwrap(), None);
        assert!(lines.at_eof());
    }

    #[test]
    fn overlong_line_is_an_error() {
        let (r, mut w) = std::io::pipe().unwrap();
        let mut lines = LineReader::new(File::from(std::os::fd::OwnedFd::from(r)));
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&vec![b'x'; MAX_LINE + 8192]);
        });
        assert!(lines.read_line().is_err());
        drop(lines);
        writer.join().unwrap();
    }
}
