//! ListImages, optionally filtered by an image spec.

use super::{ImageRecord, ImageService};
use crate::error::Result;

impl ImageService {
    /// Every image, or only the one `filter` names (none if it names nothing).
    pub fn list(&self, filter: Option<&str>) -> Result<Vec<ImageRecord>> {
        match filter.filter(|f| !f.is_empty()) {
            None => {
                let mut images = self.store.list()?;
                images.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(images)
            }
            Some(spec) => Ok(self.lookup(spec)?.map(|(img, _)| img).into_iter().collect()),
        }
    }
}
