//! Finds the image a CRI "image spec" names: an id ("sha256:<hex>" or the bare hex), a unique id
//! prefix, or any spelling of a tag or digest reference.

use super::reference::{ImageRef, is_sha256_hex};
use super::{ImageRecord, ImageService};
use crate::error::{Error, Result};

/// How the spec matched, which decides what RemoveImage removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Id,
    /// The normalised "registry/repository:tag" that matched.
    Tag(String),
    /// The normalised "registry/repository@digest" that matched.
    Digest(String),
}

/// Shortest id prefix accepted, so that a short repository name made of hex letters ("cafe")
/// is not taken for an id.
const MIN_ID_PREFIX: usize = 12;

impl ImageService {
    pub(crate) fn lookup(&self, spec: &str) -> Result<Option<(ImageRecord, Match)>> {
        let images = self.store.list()?;
        find(&images, spec)
    }
}

/// The image `spec` names among `images` (what CreateContainer resolves its image with).
pub fn find(images: &[ImageRecord], spec: &str) -> Result<Option<(ImageRecord, Match)>> {
    if spec.is_empty() {
        return Err(Error::invalid("an image is required: give an image id, name or digest"));
    }
    let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
    if is_sha256_hex(hex)
        && let Some(img) = images.iter().find(|i| i.id.hex() == hex)
    {
        return Ok(Some((img.clone(), Match::Id)));
    }
    if let Ok(r) = ImageRef::parse(spec) {
        if let Some(d) = &r.digest {
            let name = r.digested_name(d);
            if let Some(img) = images.iter().find(|i| i.repo_digests.contains(&name)) {
                return Ok(Some((img.clone(), Match::Digest(name))));
            }
        } else if let Some(name) = r.tagged_name()
            && let Some(img) = images.iter().find(|i| i.repo_tags.contains(&name))
        {
            return Ok(Some((img.clone(), Match::Tag(name))));
        }
    }
    if hex.len() >= MIN_ID_PREFIX && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        let mut found = images.iter().filter(|i| i.id.hex().starts_with(hex));
        if let Some(first) = found.next() {
            if let Some(second) = found.next() {
                return Err(Error::invalid(format!(
                    "image id prefix {spec:?} is ambiguous: it matches {} and {}; give more characters",
                    first.id, second.id
                )));
            }
            return Ok(Some((first.clone(), Match::Id)));
        }
    }
    Ok(None)
}
