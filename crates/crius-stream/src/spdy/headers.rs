//! SPDY/3 name/value header blocks and their compression: each direction of a connection is one
//! zlib stream, primed with the SPDY/3 dictionary and sync-flushed after every block, so a block
//! can only be decompressed by the peer's single, long-lived decompressor (draft 3, 2.6.10).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::SPDY3_DICTIONARY;
use crate::error::SpdyError;

/// A header block: lowercase names in the order given; several values of one name travel as one
/// value joined by NUL bytes, as moby/spdystream writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Adds a header; the name is lowercased (SPDY requires it).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of `name` (case-insensitive), as Go's `Header.Get` returns it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The uncompressed block: a 32-bit count, then length-prefixed names and values.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.0.iter().map(|(n, v)| 8 + n.len() + v.len()).sum::<usize>());
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (name, value) in &self.0 {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block. Names are lowercased (spdystream does the same and only
    /// complains); names and values must be UTF-8.
    pub fn decode(block: &[u8]) -> Result<Headers, SpdyError> {
        let mut rest = block;
        let count = take_u32(&mut rest)?;
        // Each pair takes at least 8 bytes: a count larger than that is a lie, not an allocation.
        if count as usize > rest.len() / 8 {
            return Err(SpdyError::BadHeaderBlock("more pairs than bytes"));
        }
        let mut headers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = take_str(&mut rest)?.to_ascii_lowercase();
            let value = take_str(&mut rest)?.to_string();
            headers.push((name, value));
        }
        if !rest.is_empty() {
            return Err(SpdyError::BadHeaderBlock("trailing bytes after the last pair"));
        }
        Ok(Headers(headers))
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, SpdyError> {
    let Some((head, tail)) = rest.split_first_chunk::<4>() else {
        return Err(SpdyError::BadHeaderBlock("truncated length"));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_str<'a>(rest: &mut &'a [u8]) -> Result<&'a str, SpdyError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(SpdyError::BadHeaderBlock("truncated name or value"));
    }
    let (text, tail) = rest.split_at(len);
    *rest = tail;
    std::str::from_utf8(text).map_err(|_| SpdyError::BadHeaderBlock("name or value is not UTF-8"))
}

/// The sending side's zlib stream.
pub struct HeaderCompressor {
    deflate: Compress,
}

impl HeaderCompressor {
    pub fn new() -> Result<Self, SpdyError> {
        // Go's spdy framer uses BestCompression; header blocks are tiny, so the level costs
        // nothing measurable and keeps our blocks as small as the peer's.
        let mut deflate = Compress::new(Compression::best(), true);
        deflate.set_dictionary(SPDY3_DICTIONARY).map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(HeaderCompressor { deflate })
    }

    /// Compresses one block and sync-flushes, so the block ends on a byte boundary the peer can
    /// decode without waiting for more input.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let start = self.deflate.total_in();
        loop {
            let consumed = (self.deflate.total_in() - start) as usize;
            self.deflate
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let consumed = (self.deflate.total_in() - start) as usize;
            // zlib's contract: the flush is complete once it leaves output space unused.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// The receiving side's zlib stream.
pub struct HeaderDecompressor {
    inflate: Decompress,
    /// Bound on one decompressed block: a few hundred compressed bytes can inflate to megabytes.
    max_block: usize,
}

impl HeaderDecompressor {
    pub fn new(max_block: usize) -> Self {
        HeaderDecompressor { inflate: Decompress::new(true), max_block }
    }

    /// Decompresses one block (the whole compressed payload of one frame).
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let start = self.inflate.total_in();
        loop {
            let consumed = (self.inflate.total_in() - start) as usize;
            match self.inflate.decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    // The stream's first block names the dictionary by its Adler-32 (DICTID):
                    // only SPDY/3's is valid here.
                    self.inflate
                        .set_dictionary(SPDY3_DICTIONARY)
                        .map_err(|_| SpdyError::Compression("the peer's header dictionary is not SPDY/3's".into()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let consumed = (self.inflate.total_in() - start) as usize;
            if consumed == compressed.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() >= self.max_block {
                return Err(SpdyError::HeaderBlockTooLarge(self.max_block));
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3s() {
        assert_eq!(SPDY3_DICTIONARY.len(), 1423);
        // DICTID as zlib computes it (Adler-32).
        let (mut a, mut b) = (1u32, 0u32);
        for byte in SPDY3_DICTIONARY {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn block_encoding_by_hand() {
        let headers = Headers::new().with("streamType", "error").with("port", "80");
        let block = headers.encode();
        let mut expected = vec![0, 0, 0, 2, 0, 0, 0, 10];
        expected.extend_from_slice(b"streamtype");
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(b"error");
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"port");
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"80");
        assert_eq!(block, expected);
        let back = Headers::decode(&block).unwrap();
        assert_eq!(back.get("StreamType"), Some("error"));
        assert_eq!(back.get("port"), Some("80"));
        assert_eq!(back.get("missing"), None);
    }

    #[test]
    fn bad_blocks_are_refused() {
        assert!(Headers::decode(&[0, 0, 0]).is_err());
        assert!(Headers::decode(&[0, 0, 0, 200, 0, 0]).is_err());
        assert!(Headers::decode(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        let mut trailing = Headers::new().with("a", "b").encode();
        trailing.push(0);
        assert!(Headers::decode(&trailing).is_err());
    }

    #[test]
    fn multiple_values_are_nul_joined() {
        let block = Headers::new().with("x", "one\0two").encode();
        assert_eq!(Headers::decode(&block).unwrap().get("x"), Some("one"));
    }

    #[test]
    fn compression_round_trip_keeps_state_across_blocks() {
        let mut c = HeaderCompressor::new().unwrap();
        let mut d = HeaderDecompressor::new(1 << 20);
        let blocks: Vec<Headers> = (0..20)
            .map(|i| {
                Headers::new()
                    .with("streamtype", if i % 2 == 0 { "stdout" } else { "data" })
                    .with("port", &format!("{}", 8000 + i))
                    .with("requestid", &i.to_string())
            })
            .collect();
        let mut sizes = Vec::new();
        for h in &blocks {
            let compressed = c.compress(&h.encode()).unwrap();
            // Every block ends with the sync-flush marker.
            assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]), "{compressed:02x?}");
            sizes.push(compressed.len());
            let plain = d.decompress(&compressed).unwrap();
            assert_eq!(&Headers::decode(&plain).unwrap(), h);
        }
        // Later blocks reuse the earlier ones' strings: smaller than the first.
        assert!(sizes[10] < sizes[0], "{sizes:?}");
    }

    #[test]
    fn first_block_names_the_spdy3_dictionary() {
        let mut c = HeaderCompressor::new().unwrap();
        let out = c.compress(&Headers::new().with("a", "b").encode()).unwrap();
        // zlib header with FDICT set, then DICTID.
        assert_eq!(out[0] & 0x0f, 8, "deflate");
        assert_ne!(out[1] & 0x20, 0, "FDICT");
        assert_eq!(((u16::from(out[0]) << 8) | u16::from(out[1])) % 31, 0, "FCHECK");
        assert_eq!(&out[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn a_bomb_is_bounded() {
        let mut c = HeaderCompressor::new().unwrap();
        let big = Headers::new().with("x", &"a".repeat(100_000)).encode();
        let compressed = c.compress(&big).unwrap();
        assert!(compressed.len() < 2000);
        let mut d = HeaderDecompressor::new(16 * 1024);
        assert!(matches!(d.decompress(&compressed), Err(SpdyError::HeaderBlockTooLarge(_))));
    }

    #[test]
    fn a_foreign_dictionary_is_refused() {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(b"not the spdy dictionary").unwrap();
        let mut out = Vec::with_capacity(256);
        deflate.compress_vec(b"\0\0\0\0", &mut out, FlushCompress::Sync).unwrap();
        let mut d = HeaderDecompressor::new(1024);
        assert!(d.decompress(&out).is_err());
    }
}
