//! ImageStatus: an unknown image is an answer (no image), not an error.

use serde_json::json;

use super::{ImageRecord, ImageService, ImageUser};
use crate::error::Result;

/// What ImageStatus reports of one image.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub record: ImageRecord,
    pub user: ImageUser,
}

impl ImageView {
    pub fn of(record: ImageRecord) -> Self {
        let user = ImageUser::parse(&record.config.user);
        ImageView { record, user }
    }
}

impl ImageService {
    pub fn status(&self, spec: &str) -> Result<Option<ImageView>> {
        Ok(self.lookup(spec)?.map(|(record, _)| ImageView::of(record)))
    }

    /// Verbose info (JSON): the image config as stored and the layers with their directories.
    pub fn verbose_info(&self, view: &ImageView) -> Result<String> {
        let raw = self.store.config_json(&view.record.id)?;
        let config: serde_json::Value = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
        Ok(json!({
            "id": view.record.id,
            "manifestDigest": view.record.manifest_digest,
            "layers": view.record.layers,
            "config": config,
        })
        .to_string())
    }
}
