//! ImageFsInfo: bytes and inodes of the image store and of containers' writable layers.

use super::{FsUsage, ImageService};
use crate::error::Result;

impl ImageService {
    pub fn fs_info(&self) -> Result<FsUsage> {
        self.store.usage()
    }
}
