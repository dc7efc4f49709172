//! sha256 digests: of byte slices, of streams as they pass, and chain ids.

use std::io::{self, Read};

use crius_core::image::Digest;
use sha2::{Digest as _, Sha256};

pub fn sha256_of(bytes: &[u8]) -> Digest {
    finish(Sha256::digest(bytes).into())
}

fn finish(sum: [u8; 32]) -> Digest {
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    // 64 lowercase hex characters always parse.
    Digest::from_sha256_hex(&hex).unwrap_or_else(|_| unreachable!("sha256 hex is valid"))
}

/// A running sha256 with a byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: Sha256,
    bytes: u64,
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.bytes += data.len() as u64;
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn finish(self) -> Digest {
        finish(self.inner.finalize().into())
    }
}

/// Hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::default() }
    }
    /// Reads what is left (a tar's end padding, a compressor's trailer) so the digest covers
    /// the whole stream, then returns it with the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let bytes = self.hasher.bytes();
        Ok((self.hasher.finish(), bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Chain ids name a layer together with every layer under it, so the same diff on a different
/// base is a different directory: chain(L0) = diff(L0), chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => sha256_of(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty() {
        assert_eq!(sha256_of(b"").as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn hashing_reader_covers_the_whole_stream() {
        let mut r = HashingReader::new(&b"hello world"[..]);
        let mut five = [0u8; 5];
        r.read_exact(&mut five).unwrap();
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, 11);
        assert_eq!(d, sha256_of(b"hello world"));
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = sha256_of(b"a");
        let b = sha256_of(b"b");
        let c = sha256_of(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = sha256_of(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], sha256_of(format!("{ab} {c}").as_bytes()));
        // The same diff on another base is another chain.
        assert_ne!(chain_ids(std::slice::from_ref(&b))[0], ids[1]);
        assert!(chain_ids(&[]).is_empty());
    }
}
