//! RemoveImage: by id or digest the image goes; by one of several tags only that tag goes.
//! Idempotent: an image that is not there is already removed.

use super::ImageService;
use super::lookup::Match;
use crate::error::Result;

impl ImageService {
    pub fn remove(&self, spec: &str) -> Result<()> {
        let Some((image, how)) = self.lookup(spec)? else {
            tracing::debug!(image = spec, "image to remove is not there");
            return Ok(());
        };
        match how {
            Match::Tag(tag) if image.repo_tags.len() > 1 => {
                tracing::info!(image = %image.id, tag = %tag, "removing one tag of the image");
                self.store.untag(&image.id, &tag)
            }
            _ => {
                tracing::info!(image = %image.id, tags = ?image.repo_tags, "removing image");
                self.store.remove(&image.id)
            }
        }
    }
}
