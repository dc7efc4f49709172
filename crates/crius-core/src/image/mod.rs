//! Images: pull, list, status, remove and filesystem usage over the `ImageStore` port, one file
//! per RPC verb. References are normalised here so every spelling finds the same image.

pub mod model;
pub mod reference;

mod fs_info;
mod import;
mod list;
mod lookup;
mod pull;
mod remove;
mod status;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use lookup::{Match, find as find_image};
pub use model::{DirUsage, FsUsage, ImageConfigInfo, ImageRecord, ImageUser, LayerInfo, RegistryAuth};
pub use reference::{DEFAULT_REGISTRY, DEFAULT_TAG, Digest, ImageRef};
pub use status::ImageView;

use crate::ports::image::ImageStore;

pub struct ImageService {
    store: Arc<dyn ImageStore>,
}

impl ImageService {
    pub fn new(store: Arc<dyn ImageStore>) -> Self {
        ImageService { store }
    }

    pub fn store(&self) -> &Arc<dyn ImageStore> {
        &self.store
    }
}
