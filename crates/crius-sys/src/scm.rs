//! Receiving a file descriptor over a unix socket (SCM_RIGHTS): how runc and crun hand over the
//! pty master of a terminal container through `--console-socket`.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use crate::error::{Error, Result};

/// Receives one message carrying descriptors; returns the first descriptor (the others, if any,
/// are closed) and the message's bytes (runc sends the pty's name).
pub fn recv_fd(stream: &UnixStream) -> Result<(OwnedFd, Vec<u8>)> {
    let mut data = vec![0u8; 4096];
    let mut space = cmsg_space!([std::os::fd::RawFd; 4]);
    let (fds, len) = loop {
        let mut iov = [IoSliceMut::new(&mut data)];
        match recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs().map_err(|errno| Error::Syscall { op: "reading control messages", errno })? {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        // SAFETY: SCM_RIGHTS descriptors are new in this process and owned by no one
                        // else; each is wrapped exactly once.
                        fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                break (fds, msg.bytes);
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::Syscall { op: "recvmsg", errno }),
        }
    };
    data.truncate(len);
    let fd = fds
        .into_iter()
        .next()
        .ok_or(Error::Syscall { op: "recvmsg: no descriptor received", errno: Errno::EBADMSG })?;
    Ok((fd, data))
}

#[cfg(test)]
mod tests {
    use std::io::{IoSlice, Read, Write};
    use std::os::fd::AsFd;

    use nix::sys::socket::{ControlMessage, sendmsg};

    use super::*;

    #[test]
    fn passes_a_pipe_end() {
        let (a, b) = UnixStream::pair().unwrap();
        let (pipe_r, mut pipe_w) = std::io::pipe().unwrap();
        let fds = [pipe_r.as_fd().as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"/dev/pts/7")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(pipe_r);
        let (fd, name) = recv_fd(&b).unwrap();
        assert_eq!(name, b"/dev/pts/7");
        pipe_w.write_all(b"through").unwrap();
        drop(pipe_w);
        let mut got = String::new();
        std::fs::File::from(fd).read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
    }

    #[test]
    fn a_message_without_descriptor_is_an_error() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        assert!(recv_fd(&b).is_err());
    }
}
