//! A pseudo-terminal for tty exec: runc in the foreground with `--tty` copies between its own
//! terminal (our pty's slave, its stdin/stdout/stderr) and the container's, and on SIGWINCH
//! copies our window size to the container's terminal. So runc 1.1 needs no console socket, and
//! its exit status is the command's.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;

use crate::backend::TerminalSize;

pub struct Pty {
    pub master: PtyMaster,
    pub slave: OwnedFd,
}

/// The master side, shared by the input and output pumps.
#[derive(Clone)]
pub struct PtyMaster(Arc<AsyncFd<OwnedFd>>);

impl Pty {
    /// A pty in raw mode (runc sets it raw too, but only once it runs: input written before
    /// must not be echoed back or held for a newline), sized `size`.
    pub fn open(size: TerminalSize) -> io::Result<Pty> {
        let ws = Winsize { ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0 };
        let pair = openpty(Some(&ws), None).map_err(io::Error::from)?;
        let mut termios = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        // SAFETY: `register` needs the descriptor to stay open and the same for the AsyncFd's
        // lifetime; the AsyncFd takes the OwnedFd itself, which nothing else can close or
        // replace, and OwnedFd's as_raw_fd always returns that one descriptor.
        let master = unsafe { AsyncFd::register(pair.master) }.map_err(io::Error::from)?;
        Ok(Pty { master: PtyMaster(Arc::new(master)), slave: pair.slave })
    }
}

impl PtyMaster {
    /// Reads output; Ok(0) once every slave holder is gone (Linux reports EIO then).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc_eio()) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    pub fn resize(&self, size: TerminalSize) -> io::Result<()> {
        let ws = rustix::termios::Winsize { ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0 };
        rustix::termios::tcsetwinsize(self.0.get_ref().as_fd(), ws).map_err(io::Error::from)
    }
}

fn libc_eio() -> i32 {
    nix::errno::Errno::EIO as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raw_pty_passes_bytes_and_reports_eof() {
        let pty = Pty::open(TerminalSize { width: 80, height: 24 }).unwrap();
        let slave = std::fs::File::from(pty.slave);
        pty.master.write_all(b"abc").await.unwrap();
        let mut got = [0u8; 3];
        std::io::Read::read_exact(&mut &slave, &mut got).unwrap();
        // Raw mode: no echo came back, no newline needed.
        assert_eq!(&got, b"abc");
        std::io::Write::write_all(&mut &slave, b"out").unwrap();
        let mut buf = [0u8; 16];
        let n = pty.master.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"out");
        pty.master.resize(TerminalSize { width: 100, height: 40 }).unwrap();
        let ws = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((ws.ws_col, ws.ws_row), (100, 40));
        drop(slave);
        assert_eq!(pty.master.read(&mut buf).await.unwrap(), 0);
    }
}
