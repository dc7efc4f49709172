//! Layer tars unpacked into overlay-ready directories: OCI whiteouts become overlayfs ones,
//! owners, modes, times, xattrs, hardlinks, symlinks and device nodes are kept, and no entry
//! can write outside the layer's directory.

mod apply;
mod decompress;
pub mod paths;
pub mod whiteout;

use std::io::Read;
use std::path::Path;

use crius_core::image::Digest;

use crate::digest::HashingReader;
use crate::error::UnpackError;

pub use decompress::{Compression, decoder as decompress_reader, sniff};

/// What unpacking a layer found.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// Digest of the uncompressed tar (the layer's diff id).
    pub diff_id: Digest,
    pub tar_bytes: u64,
    pub compression: Compression,
}

/// Unpacks the layer read from `input` (gzip, zstd or plain tar, detected by its first bytes)
/// into `dest`, an empty directory. When `expected_diff_id` is given a different one fails.
pub fn unpack_layer(
    input: impl Read + Send,
    dest: &Path,
    expected_diff_id: Option<&Digest>,
) -> Result<Unpacked, UnpackError> {
    let (compression, decoded) = decompress::decoder(input).map_err(UnpackError::Tar)?;
    let mut hashing = HashingReader::new(decoded);
    let mut archive = tar::Archive::new(&mut hashing);
    let mut applier = apply::Applier::new(dest);
    for entry in archive.entries().map_err(UnpackError::Tar)? {
        let mut entry = entry.map_err(UnpackError::Tar)?;
        applier.apply(&mut entry)?;
    }
    applier.finish()?;
    // The diff id covers the whole tar, its end-of-archive blocks included.
    let (diff_id, tar_bytes) = hashing.finish().map_err(UnpackError::Tar)?;
    if let Some(expected) = expected_diff_id
        && &diff_id != expected
    {
        return Err(UnpackError::DiffIdMismatch { expected: expected.to_string(), actual: diff_id.to_string() });
    }
    Ok(Unpacked { diff_id, tar_bytes, compression })
}

#[cfg(test)]
mod tests;
