//! The frames of an attach connection. After the `attach` request and its `ok` reply, the
//! monitor's socket connection carries frames both ways: `[kind: u8][length: u32 BE][payload]`.
//!
//! - monitor to client: [`Kind::Stdout`], [`Kind::Stderr`] (the container's output as it is
//!   read, before it becomes log lines). The monitor closes the connection when the
//!   container's output has ended (it exited) or the client fell too far behind.
//! - client to monitor: [`Kind::Stdin`] (bytes for the container's stdin), [`Kind::StdinClose`]
//!   (the client's stdin ended), [`Kind::Resize`] (width and height, u16 BE each).

/// Longest payload either side sends or accepts: a frame announcing more is a protocol error.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Kind and length.
const HEADER: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    StdinClose = 3,
    Resize = 4,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Stdin,
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::StdinClose,
            4 => Kind::Resize,
            _ => return None,
        })
    }
}

/// Appends one frame to `out`; a payload over [`MAX_PAYLOAD`] is split into several frames.
pub fn encode(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let mut chunks = payload.chunks(MAX_PAYLOAD).peekable();
    if chunks.peek().is_none() {
        out.push(kind as u8);
        out.extend_from_slice(&0u32.to_be_bytes());
        return;
    }
    for chunk in chunks {
        out.push(kind as u8);
        // Fits: a chunk is at most MAX_PAYLOAD bytes.
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

pub fn encode_resize(width: u16, height: u16, out: &mut Vec<u8>) {
    let mut payload = [0u8; 4];
    payload[..2].copy_from_slice(&width.to_be_bytes());
    payload[2..].copy_from_slice(&height.to_be_bytes());
    encode(Kind::Resize, &payload, out);
}

/// (width, height) of a resize payload.
pub fn decode_resize(payload: &[u8]) -> Option<(u16, u16)> {
    let bytes: [u8; 4] = payload.try_into().ok()?;
    Some((u16::from_be_bytes([bytes[0], bytes[1]]), u16::from_be_bytes([bytes[2], bytes[3]])))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown attach frame kind {0}")]
    UnknownKind(u8),
    #[error("attach frame of {0} bytes is over the limit of {MAX_PAYLOAD}")]
    TooLong(usize),
}

/// Splits a byte stream into frames, however the reads cut it.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(Kind, Vec<u8>)>, FrameError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let kind = Kind::from_byte(self.buf[0]).ok_or(FrameError::UnknownKind(self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLong(len));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        if self.buf.is_empty() {
            // A burst grew the buffer: give the memory back (the monitor stays lean).
            self.buf = Vec::new();
        }
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_cut() {
        let mut wire = Vec::new();
        encode(Kind::Stdout, b"hello", &mut wire);
        encode(Kind::StdinClose, b"", &mut wire);
        encode_resize(80, 24, &mut wire);
        encode(Kind::Stderr, b"oops\n", &mut wire);
        for cut in 1..wire.len() {
            let mut r = FrameReader::default();
            let mut frames = Vec::new();
            for piece in wire.chunks(cut) {
                r.push(piece);
                while let Some(f) = r.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(
                frames,
                vec![
                    (Kind::Stdout, b"hello".to_vec()),
                    (Kind::StdinClose, vec![]),
                    (Kind::Resize, vec![0, 80, 0, 24]),
                    (Kind::Stderr, b"oops\n".to_vec()),
                ],
                "cut every {cut} bytes"
            );
        }
        assert_eq!(decode_resize(&[0, 80, 0, 24]), Some((80, 24)));
        assert_eq!(decode_resize(&[1, 2, 3]), None);
    }

    #[test]
    fn big_payloads_are_split_and_bad_headers_refused() {
        let mut wire = Vec::new();
        encode(Kind::Stdin, &vec![7u8; MAX_PAYLOAD + 3], &mut wire);
        let mut r = FrameReader::default();
        r.push(&wire);
        assert_eq!(r.next_frame().unwrap().unwrap().1.len(), MAX_PAYLOAD);
        assert_eq!(r.next_frame().unwrap().unwrap().1, vec![7u8; 3]);
        assert_eq!(r.next_frame().unwrap(), None);

        let mut r = FrameReader::default();
        r.push(&[9, 0, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(FrameError::UnknownKind(9)));
        let mut r = FrameReader::default();
        r.push(&[1, 0xff, 0, 0, 0]);
        assert!(matches!(r.next_frame(), Err(FrameError::TooLong(_))));
    }
}
