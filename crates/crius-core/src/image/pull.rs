//! PullImage: normalise the reference, then let the store fetch what it does not have.

use super::{ImageRecord, ImageRef, ImageService, RegistryAuth};
use crate::error::Result;

impl ImageService {
    /// Returns the pulled image; CRI answers with its id.
    pub fn pull(&self, image: &str, auth: &RegistryAuth) -> Result<ImageRecord> {
        let reference = ImageRef::parse(image)?;
        tracing::info!(image = %reference, "pulling image");
        self.store.pull(&reference, auth).map_err(|e| e.context(format!("pulling image {reference}")))
    }
}
