//! A blocking client of the monitor's socket: one request per connection.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{MonitorError, Result};
use crate::protocol::{MAX_LINE, Op, Request, Response, decode_response, encode_line};

/// Sends `op` to the monitor listening on `socket` and returns its reply. `timeout` bounds each
/// read and write. A reply with `ok: false` is returned as is (the caller decides).
pub fn request(socket: &Path, op: Op, timeout: Duration) -> Result<Response> {
    let what = || format!("talking to the monitor at {}", socket.display());
    let short = crius_sys::unix_path::SocketPath::new(socket).map_err(|e| MonitorError::sys(what(), e))?;
    let mut stream = UnixStream::connect(short.path()).map_err(|e| MonitorError::io(what(), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| MonitorError::io(what(), e))?;
    stream.write_all(encode_line(&Request::new(op)).as_bytes()).map_err(|e| MonitorError::io(what(), e))?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if reply.contains(&b'\n') || reply.len() > MAX_LINE {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(MonitorError::io(what(), e)),
        }
    }
    let end = reply.iter().position(|&b| b == b'\n').unwrap_or(reply.len());
    decode_response(&reply[..end]).map_err(|e| MonitorError::Protocol(format!("{e} (at {})", socket.display())))
}
