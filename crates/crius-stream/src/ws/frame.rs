//! WebSocket frames (RFC 6455, 5.2): `FIN RSV(3) opcode(4) | MASK len(7) [len16|len64] [key]
//! payload`. Clients mask, servers do not; a server refuses unmasked client frames and a client
//! refuses masked server frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::WsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn code(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
        }
    }

    fn from_code(code: u8) -> Option<Opcode> {
        Some(match code {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Bytes,
}

/// Appends a frame; `mask` is Some(key) for a client.
pub fn encode(out: &mut BytesMut, fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(14 + payload.len());
    out.put_u8(if fin { 0x80 } else { 0 } | opcode.code());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.put_u8(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
    match mask {
        None => out.put_slice(payload),
        Some(key) => {
            out.put_slice(&key);
            let start = out.len();
            out.put_slice(payload);
            apply_mask(&mut out[start..], key);
        }
    }
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Decodes frames from the front of a buffer.
pub struct FrameDecoder {
    /// True on the server: frames must be masked.
    expect_masked: bool,
    max_payload: usize,
}

impl FrameDecoder {
    pub fn new(expect_masked: bool, max_payload: usize) -> Self {
        FrameDecoder { expect_masked, max_payload }
    }

    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<WsFrame>, WsError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol("reserved bits set without an extension"));
        }
        let opcode = Opcode::from_code(b0 & 0x0f).ok_or(WsError::Protocol("unknown opcode"))?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        if masked != self.expect_masked {
            return Err(WsError::Protocol(if self.expect_masked {
                "a client frame is not masked"
            } else {
                "a server frame is masked"
            }));
        }
        let (len, mut at) = match b1 & 0x7f {
            126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 if buf.len() >= 10 => {
                let n = u64::from_be_bytes([buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9]]);
                (usize::try_from(n).unwrap_or(usize::MAX), 10)
            }
            126 | 127 => return Ok(None),
            n => (usize::from(n), 2),
        };
        if opcode.is_control() && (len > 125 || !fin) {
            return Err(WsError::Protocol("a control frame is fragmented or over 125 bytes"));
        }
        if len > self.max_payload {
            return Err(WsError::MessageTooLarge(len));
        }
        let key = if masked {
            if buf.len() < at + 4 {
                return Ok(None);
            }
            let k = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            at += 4;
            Some(k)
        } else {
            None
        };
        if buf.len() < at + len {
            buf.reserve(at + len - buf.len());
            return Ok(None);
        }
        buf.advance(at);
        let mut payload = buf.split_to(len);
        if let Some(key) = key {
            apply_mask(&mut payload, key);
        }
        Ok(Some(WsFrame { fin, opcode, payload: payload.freeze() }))
    }
}

/// Reassembles fragmented messages.
#[derive(Default)]
pub struct Reassembler {
    partial: Option<(Opcode, BytesMut)>,
}

/// A whole message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// The close code (1005 when none was given) and reason.
    Close(u16, Bytes),
}

impl Reassembler {
    pub fn push(&mut self, frame: WsFrame, max_message: usize) -> Result<Option<Message>, WsError> {
        match frame.opcode {
            Opcode::Ping => return Ok(Some(Message::Ping(frame.payload))),
            Opcode::Pong => return Ok(Some(Message::Pong(frame.payload))),
            Opcode::Close => {
                let mut p = frame.payload;
                let code = if p.len() >= 2 { p.get_u16() } else { 1005 };
                return Ok(Some(Message::Close(code, p)));
            }
            Opcode::Text | Opcode::Binary => {
                if self.partial.is_some() {
                    return Err(WsError::Protocol("a new message inside a fragmented one"));
                }
                if frame.fin {
                    return Ok(Some(whole(frame.opcode, frame.payload)));
                }
                self.partial = Some((frame.opcode, BytesMut::from(&frame.payload[..])));
            }
            Opcode::Continuation => {
                let Some((opcode, mut data)) = self.partial.take() else {
                    return Err(WsError::Protocol("a continuation without a message"));
                };
                if data.len() + frame.payload.len() > max_message {
                    return Err(WsError::MessageTooLarge(data.len() + frame.payload.len()));
                }
                data.extend_from_slice(&frame.payload);
                if frame.fin {
                    return Ok(Some(whole(opcode, data.freeze())));
                }
                self.partial = Some((opcode, data));
            }
        }
        Ok(None)
    }
}

fn whole(opcode: Opcode, payload: Bytes) -> Message {
    if opcode == Opcode::Text { Message::Text(payload) } else { Message::Binary(payload) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 6455 5.7: an unmasked "Hello" and a masked one.
        let mut out = BytesMut::new();
        encode(&mut out, true, Opcode::Text, b"Hello", None);
        assert_eq!(&out[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut masked = BytesMut::new();
        encode(&mut masked, true, Opcode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(&masked[..], &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        let server = FrameDecoder::new(true, 1 << 20);
        let f = server.decode(&mut masked).unwrap().unwrap();
        assert_eq!((f.fin, f.opcode, &f.payload[..]), (true, Opcode::Text, &b"Hello"[..]));
        // A server refuses unmasked client frames; a client refuses masked server frames.
        assert!(server.decode(&mut out.clone()).is_err());
        let client = FrameDecoder::new(false, 1 << 20);
        assert_eq!(client.decode(&mut out).unwrap().unwrap().payload, Bytes::from_static(b"Hello"));
    }

    #[test]
    fn extended_lengths_and_partial_input() {
        for len in [125usize, 126, 65535, 65536, 70000] {
            let payload = vec![0xabu8; len];
            let mut out = BytesMut::new();
            encode(&mut out, true, Opcode::Binary, &payload, Some([1, 2, 3, 4]));
            let d = FrameDecoder::new(true, 1 << 20);
            let mut partial = BytesMut::from(&out[..out.len() - 1]);
            assert_eq!(d.decode(&mut partial).unwrap(), None);
            let f = d.decode(&mut out).unwrap().unwrap();
            assert_eq!(f.payload.len(), len);
            assert!(f.payload.iter().all(|b| *b == 0xab));
        }
    }

    #[test]
    fn fragments_reassemble_around_a_ping() {
        let mut r = Reassembler::default();
        let frame = |fin, opcode, p: &'static [u8]| WsFrame { fin, opcode, payload: Bytes::from_static(p) };
        assert_eq!(r.push(frame(false, Opcode::Binary, b"\x01ab"), 100).unwrap(), None);
        assert_eq!(
            r.push(frame(true, Opcode::Ping, b"p"), 100).unwrap(),
            Some(Message::Ping(Bytes::from_static(b"p")))
        );
        assert_eq!(r.push(frame(false, Opcode::Continuation, b"cd"), 100).unwrap(), None);
        assert_eq!(
            r.push(frame(true, Opcode::Continuation, b"e"), 100).unwrap(),
            Some(Message::Binary(Bytes::from_static(b"\x01abcde")))
        );
        assert!(r.push(frame(true, Opcode::Continuation, b"x"), 100).is_err());
        assert_eq!(
            r.push(frame(true, Opcode::Close, b"\x03\xe8bye"), 100).unwrap(),
            Some(Message::Close(1000, Bytes::from_static(b"bye")))
        );
    }

    #[test]
    fn bad_frames() {
        let d = FrameDecoder::new(false, 10);
        assert!(d.decode(&mut BytesMut::from(&[0x82u8, 11][..])).is_err(), "too large");
        assert!(d.decode(&mut BytesMut::from(&[0xc2u8, 0][..])).is_err(), "rsv1");
        assert!(d.decode(&mut BytesMut::from(&[0x83u8, 0][..])).is_err(), "opcode 3");
        assert!(d.decode(&mut BytesMut::from(&[0x09u8, 0][..])).is_err(), "fragmented ping");
    }
}
