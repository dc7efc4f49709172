//! The daemon's side of attach: asks the pod's monitor to attach a connection to a container,
//! then copies between the client's streams and the [`crate::attach_wire`] frames until the
//! container's output ends, the client stops reading it, or (with no output asked for) the
//! client's stdin ends.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::attach_wire::{self, FrameReader, Kind};
use crate::error::{MonitorError, Result};
use crate::protocol::{MAX_LINE, Op, Request, Response, decode_response, encode_line};

/// How long the monitor has to answer the attach request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 32 * 1024;

/// Terminal sizes as the client sends them, and how to read (width, height) from one.
pub type Resizes<T> = (mpsc::Receiver<T>, fn(&T) -> (u16, u16));

/// The client's side of an attach session.
pub struct AttachIo<R, W, T> {
    pub stdin: Option<R>,
    pub stdout: Option<W>,
    pub stderr: Option<W>,
    pub resize: Option<Resizes<T>>,
}

/// Attaches to `container_id` through the monitor at `socket` and runs the session.
pub async fn attach<R, W, T>(socket: &Path, container_id: &str, io: AttachIo<R, W, T>) -> Result<()>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let what = || format!("attaching to container {container_id} through the monitor at {}", socket.display());
    let short = crius_sys::unix_path::SocketPath::new(socket).map_err(|e| MonitorError::sys(what(), e))?;
    let mut stream = UnixStream::connect(short.path()).await.map_err(|e| MonitorError::io(what(), e))?;
    let op = Op::Attach {
        container_id: container_id.to_string(),
        stdin: io.stdin.is_some(),
        stdout: io.stdout.is_some(),
        stderr: io.stderr.is_some(),
    };
    stream.write_all(encode_line(&Request::new(op)).as_bytes()).await.map_err(|e| MonitorError::io(what(), e))?;
    let reply = tokio::time::timeout(REPLY_TIMEOUT, read_reply(&mut stream))
        .await
        .map_err(|_| MonitorError::Protocol(format!("{}: no reply within {REPLY_TIMEOUT:?}", what())))??;
    if !reply.ok {
        return Err(MonitorError::Refused(reply.error.unwrap_or_else(|| "no reason given".into())));
    }

    let wants_output = io.stdout.is_some() || io.stderr.is_some();
    let (from_monitor, to_monitor) = stream.into_split();
    let output = copy_output(from_monitor, io.stdout, io.stderr);
    let input = copy_input(to_monitor, io.stdin, io.resize);
    tokio::pin!(output, input);
    let mut input_done = false;
    loop {
        tokio::select! {
            result = &mut output => return result.map_err(|e| MonitorError::io(what(), e)),
            _ = &mut input, if !input_done => {
                input_done = true;
                // Nothing to show the client: the session was its stdin, and it has ended.
                if !wants_output {
                    return Ok(());
                }
            }
        }
    }
}

/// The reply line, read a byte at a time so no frame after it is consumed.
async fn read_reply(stream: &mut UnixStream) -> Result<Response> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = stream.read(&mut byte).await.map_err(|e| MonitorError::io("reading the attach reply", e))?;
        if n == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > MAX_LINE {
            return Err(MonitorError::Protocol("the attach reply is too long".into()));
        }
    }
    decode_response(&line).map_err(|e| MonitorError::Protocol(format!("attaching: {e}")))
}

/// Output frames to the client's streams until the monitor closes (the container is done). A
/// client that stops taking output ends the session.
async fn copy_output<W: AsyncWrite + Unpin>(
    mut from: OwnedReadHalf,
    mut stdout: Option<W>,
    mut stderr: Option<W>,
) -> std::io::Result<()> {
    let mut frames = FrameReader::default();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        frames.push(&buf[..n]);
        while let Some((kind, data)) = frames.next_frame().map_err(std::io::Error::other)? {
            let target = match kind {
                Kind::Stdout => stdout.as_mut(),
                Kind::Stderr => stderr.as_mut(),
                _ => return Err(std::io::Error::other(format!("the monitor sent a {kind:?} frame"))),
            };
            if let Some(w) = target {
                w.write_all(&data).await?;
                w.flush().await?;
            }
        }
    }
    for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = w.shutdown().await;
    }
    Ok(())
}

/// The client's stdin and resizes as frames; returns when both have ended (or the monitor
/// stopped reading).
async fn copy_input<R: AsyncRead + Unpin, T>(
    mut to: OwnedWriteHalf,
    mut stdin: Option<R>,
    mut resize: Option<Resizes<T>>,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut frame = Vec::new();
    while stdin.is_some() || resize.is_some() {
        frame.clear();
        tokio::select! {
            read = async { stdin.as_mut()?.read(&mut buf).await.ok() }, if stdin.is_some() => match read {
                Some(n) if n > 0 => attach_wire::encode(Kind::Stdin, &buf[..n], &mut frame),
                _ => {
                    stdin = None;
                    attach_wire::encode(Kind::StdinClose, &[], &mut frame);
                }
            },
            size = async { resize.as_mut()?.0.recv().await }, if resize.is_some() => match (size, &resize) {
                (Some(size), Some((_, dims))) => {
                    let (w, h) = dims(&size);
                    attach_wire::encode_resize(w, h, &mut frame);
                }
                _ => resize = None,
            },
        }
        if !frame.is_empty() && to.write_all(&frame).await.is_err() {
            return;
        }
    }
}
