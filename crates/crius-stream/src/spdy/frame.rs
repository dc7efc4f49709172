//! SPDY/3 frames on the wire (draft 3, section 2.2): control frames
//! `1 | version(15) | type(16) | flags(8) | length(24) | payload` and data frames
//! `0 | stream-id(31) | flags(8) | length(24) | payload`, big-endian.
//!
//! Only frame types Go's framer knows are ever sent: an unknown control type makes moby/spdystream
//! drop the whole connection. Unknown types received are kept as [`Frame::Unknown`] and ignored
//! (the spec says so).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};
use crate::error::SpdyError;

pub const VERSION: u16 = 3;
/// The largest payload the 24-bit length field allows.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
const HEADER_LEN: usize = 8;

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
}

/// SETTINGS ids.
pub mod setting {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        clear: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame of a type this implementation does not handle (CREDENTIAL, or a future
    /// one), or of another SPDY version; ignored.
    Unknown {
        version: u16,
        frame_type: u16,
    },
}

impl Frame {
    /// Appends the frame's wire form to `out`; header blocks go through `compressor`, whose
    /// state the peer's decompressor mirrors, so frames must be written in encoding order.
    pub fn encode(&self, out: &mut BytesMut, compressor: &mut HeaderCompressor) -> Result<(), SpdyError> {
        match self {
            Frame::Data { stream_id, fin, data } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(SpdyError::FrameTooLarge(data.len()));
                }
                out.reserve(HEADER_LEN + data.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(flag(*fin)) << 24) | data.len() as u32);
                out.put_slice(data);
            }
            Frame::SynStream { stream_id, associated_to, priority, slot, flags, headers } => {
                let block = compressor.compress(&headers.encode())?;
                control(out, TYPE_SYN_STREAM, *flags, 10 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(*slot);
                out.put_slice(&block);
            }
            Frame::SynReply { stream_id, fin, headers } => {
                let block = compressor.compress(&headers.encode())?;
                control(out, TYPE_SYN_REPLY, flag(*fin), 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::Headers { stream_id, fin, headers } => {
                let block = compressor.compress(&headers.encode())?;
                control(out, TYPE_HEADERS, flag(*fin), 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control(out, TYPE_RST_STREAM, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { clear, entries } => {
                control(out, TYPE_SETTINGS, if *clear { FLAG_SETTINGS_CLEAR } else { 0 }, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for e in entries {
                    out.put_u32((u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff));
                    out.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                control(out, TYPE_PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway { last_good_stream_id, status } => {
                control(out, TYPE_GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, TYPE_WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Unknown { .. } => return Err(SpdyError::Protocol("an unknown frame cannot be sent")),
        }
        Ok(())
    }
}

fn flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

fn control(out: &mut BytesMut, frame_type: u16, flags: u8, len: usize) -> Result<(), SpdyError> {
    if len > MAX_PAYLOAD {
        return Err(SpdyError::FrameTooLarge(len));
    }
    out.reserve(HEADER_LEN + len);
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u32((u32::from(flags) << 24) | len as u32);
    Ok(())
}

/// Reads frames out of a byte buffer, holding the connection's header decompressor.
pub struct FrameDecoder {
    headers: HeaderDecompressor,
    /// Largest payload accepted (data and control frames alike).
    max_payload: usize,
}

impl FrameDecoder {
    pub fn new(max_payload: usize, max_header_block: usize) -> Self {
        FrameDecoder { headers: HeaderDecompressor::new(max_header_block), max_payload: max_payload.min(MAX_PAYLOAD) }
    }

    /// The next whole frame from the front of `buf`, consuming it; None when `buf` holds only
    /// part of one (the caller reads more and calls again).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if len > self.max_payload {
            return Err(SpdyError::FrameTooLarge(len));
        }
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        if word & 0x8000_0000 == 0 {
            let stream_id = word & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(SpdyError::Protocol("a data frame on stream 0"));
            }
            return Ok(Some(Frame::Data { stream_id, fin: flags & FLAG_FIN != 0, data: payload }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        let frame_type = (word & 0xffff) as u16;
        if version != VERSION {
            return Ok(Some(Frame::Unknown { version, frame_type }));
        }
        self.control(frame_type, flags, payload).map(Some)
    }

    fn control(&mut self, frame_type: u16, flags: u8, mut p: Bytes) -> Result<Frame, SpdyError> {
        let fin = flags & FLAG_FIN != 0;
        let need = |p: &Bytes, n: usize| {
            if p.len() < n { Err(SpdyError::Protocol("a control frame shorter than its fields")) } else { Ok(()) }
        };
        Ok(match frame_type {
            TYPE_SYN_STREAM => {
                need(&p, 10)?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let slot = p.get_u8();
                // Decompress even a frame about to be refused: the zlib stream must stay in step.
                let headers = self.headers(&p)?;
                if stream_id == 0 {
                    return Err(SpdyError::Protocol("SYN_STREAM for stream 0"));
                }
                Frame::SynStream { stream_id, associated_to, priority, slot, flags, headers }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(&p, 4)?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let headers = self.headers(&p)?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply { stream_id, fin, headers }
                } else {
                    Frame::Headers { stream_id, fin, headers }
                }
            }
            TYPE_RST_STREAM => {
                need(&p, 8)?;
                Frame::RstStream { stream_id: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
            }
            TYPE_SETTINGS => {
                need(&p, 4)?;
                let count = p.get_u32() as usize;
                if p.len() != count.saturating_mul(8) {
                    return Err(SpdyError::Protocol("SETTINGS length does not match its count"));
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = p.get_u32();
                        Setting { flags: (word >> 24) as u8, id: word & 0x00ff_ffff, value: p.get_u32() }
                    })
                    .collect();
                Frame::Settings { clear: flags & FLAG_SETTINGS_CLEAR != 0, entries }
            }
            TYPE_PING => {
                need(&p, 4)?;
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                need(&p, 4)?;
                let last_good_stream_id = p.get_u32() & 0x7fff_ffff;
                // SPDY/2 peers send no status.
                let status = if p.len() >= 4 { p.get_u32() } else { 0 };
                Frame::GoAway { last_good_stream_id, status }
            }
            TYPE_WINDOW_UPDATE => {
                need(&p, 8)?;
                Frame::WindowUpdate { stream_id: p.get_u32() & 0x7fff_ffff, delta: p.get_u32() & 0x7fff_ffff }
            }
            other => Frame::Unknown { version: VERSION, frame_type: other },
        })
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        Headers::decode(&self.headers.decompress(compressed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame.encode(&mut out, &mut HeaderCompressor::new().unwrap()).unwrap();
        out.to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Vec<Frame> {
        let mut d = FrameDecoder::new(MAX_PAYLOAD, 1 << 20);
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(f) = d.decode(&mut buf).unwrap() {
            frames.push(f);
        }
        assert!(buf.is_empty());
        frames
    }

    // Recorded frames, written out by hand from the draft 3 layouts.

    #[test]
    fn data_frame() {
        let f = Frame::Data { stream_id: 5, fin: true, data: Bytes::from_static(b"hi") };
        let wire = [0, 0, 0, 5, 0x01, 0, 0, 2, b'h', b'i'];
        assert_eq!(encode(&f), wire);
        assert_eq!(decode_all(&wire), [f]);
    }

    #[test]
    fn rst_ping_goaway_window_update() {
        let cases: [(Frame, &[u8]); 4] = [
            (
                Frame::RstStream { stream_id: 3, status: rst::CANCEL },
                &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5],
            ),
            (Frame::Ping { id: 7 }, &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]),
            (Frame::GoAway { last_good_stream_id: 9, status: 0 }, &[0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0]),
            (
                Frame::WindowUpdate { stream_id: 1, delta: 0x1_0000 },
                &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0],
            ),
        ];
        for (frame, wire) in cases {
            assert_eq!(encode(&frame), wire, "{frame:?}");
            assert_eq!(decode_all(wire), [frame]);
        }
    }

    #[test]
    fn settings_frame() {
        let f = Frame::Settings {
            clear: false,
            entries: vec![Setting { flags: 0, id: setting::INITIAL_WINDOW_SIZE, value: 1 << 20 }],
        };
        let wire = [0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0x10, 0, 0];
        assert_eq!(encode(&f), wire);
        assert_eq!(decode_all(&wire), [f]);
    }

    /// A SYN_STREAM as a client sends it, its header block compressed by hand: zlib header
    /// (CMF 0x78, FLG with FDICT), DICTID, then one *stored* deflate block holding the
    /// uncompressed name/value block, then the sync-flush marker. Any inflater primed with the
    /// SPDY/3 dictionary reads it; so must ours.
    #[test]
    fn syn_stream_with_a_hand_built_compressed_block() {
        let block = Headers::new().with("streamtype", "stdin").encode();
        let mut compressed = vec![0x78, 0xbb, 0xe3, 0xc6, 0xa7, 0xc2];
        assert_eq!((0x78u16 << 8 | 0xbb) % 31, 0);
        // Stored block, not final: BFINAL=0 BTYPE=00, LEN, NLEN (little-endian).
        compressed.push(0x00);
        compressed.extend_from_slice(&(block.len() as u16).to_le_bytes());
        compressed.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
        compressed.extend_from_slice(&block);
        compressed.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        let mut wire = vec![0x80, 3, 0, 1, 0, 0, 0, 10 + compressed.len() as u8];
        wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        wire.extend_from_slice(&compressed);
        let frames = decode_all(&wire);
        let Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, flags: 0, headers, .. } = &frames[0] else {
            panic!("{frames:?}")
        };
        assert_eq!(headers.get("streamType"), Some("stdin"));
    }

    #[test]
    fn header_frames_round_trip_through_one_zlib_stream() {
        let mut c = HeaderCompressor::new().unwrap();
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 2,
                slot: 0,
                flags: FLAG_FIN,
                headers: Headers::new().with("streamtype", "error"),
            },
            Frame::SynReply { stream_id: 1, fin: false, headers: Headers::new() },
            Frame::Headers { stream_id: 1, fin: true, headers: Headers::new().with("x", "y") },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: Headers::new().with("streamtype", "stdout"),
            },
        ];
        let mut out = BytesMut::new();
        for f in &frames {
            f.encode(&mut out, &mut c).unwrap();
        }
        // Fed a byte at a time: partial frames wait for the rest.
        let mut d = FrameDecoder::new(MAX_PAYLOAD, 1 << 20);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in out {
            buf.put_u8(byte);
            if let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let mut d = FrameDecoder::new(1024, 1024);
        let mut big = BytesMut::from(&[0u8, 0, 0, 1, 0, 0, 0x10, 0][..]);
        assert!(matches!(d.decode(&mut big), Err(SpdyError::FrameTooLarge(4096))));
        let mut zero = BytesMut::from(&[0u8, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(d.decode(&mut zero).is_err());
        let mut short_rst = BytesMut::from(&[0x80u8, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(d.decode(&mut short_rst).is_err());
        let mut bad_settings = BytesMut::from(&[0x80u8, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 2][..]);
        assert!(d.decode(&mut bad_settings).is_err());
    }

    #[test]
    fn unknown_types_and_versions_are_skipped() {
        let wire = [0x80, 3, 0, 10, 0, 0, 0, 2, 1, 2, 0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        assert_eq!(
            decode_all(&wire),
            [Frame::Unknown { version: 3, frame_type: 10 }, Frame::Unknown { version: 2, frame_type: 6 }]
        );
        let mut out = BytesMut::new();
        assert!(
            Frame::Unknown { version: 3, frame_type: 10 }
                .encode(&mut out, &mut HeaderCompressor::new().unwrap())
                .is_err()
        );
    }
}
