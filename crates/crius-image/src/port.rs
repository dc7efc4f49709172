//! crius-core's `ImageStore` port over the store. The domain calls it on blocking threads; the
//! pull runs on the async runtime and is waited for here.

use std::path::{Path, PathBuf};

use crius_core::Result;
use crius_core::image::{Digest, FsUsage, ImageRecord, ImageRef, RegistryAuth};
use crius_core::ports::ImageStore;

use crate::store::ImageStoreImpl;

impl ImageStore for ImageStoreImpl {
    fn pull(&self, reference: &ImageRef, auth: &RegistryAuth) -> Result<ImageRecord> {
        let inner = self.inner.clone();
        let (r, a) = (reference.clone(), auth.clone());
        // Spawned rather than run on this thread: the pull's tasks need the runtime's workers,
        // and a pull that outlives its caller still lands for a retry to find.
        let task = self.runtime.spawn(async move { inner.pull(&r, &a).await });
        match self.runtime.block_on(task) {
            Ok(result) => result.map_err(Into::into),
            Err(e) => Err(crius_core::Error::internal(format!("pulling {reference}"), e)),
        }
    }

    fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(ImageStoreImpl::list(self))
    }

    fn config_json(&self, id: &Digest) -> Result<Vec<u8>> {
        ImageStoreImpl::config_json(self, id).map_err(Into::into)
    }

    fn untag(&self, id: &Digest, name: &str) -> Result<()> {
        ImageStoreImpl::untag(self, id, name).map_err(Into::into)
    }

    fn remove(&self, id: &Digest) -> Result<()> {
        ImageStoreImpl::remove(self, id).map(drop).map_err(Into::into)
    }

    fn usage(&self) -> Result<FsUsage> {
        Ok(ImageStoreImpl::usage(self))
    }

    fn hold_layers(&self, holder: &str, id: &Digest) -> Result<Vec<PathBuf>> {
        ImageStoreImpl::hold_layers(self, holder, id).map_err(Into::into)
    }

    fn release_layers(&self, holder: &str) -> Result<()> {
        ImageStoreImpl::release_layers(self, holder).map(drop).map_err(Into::into)
    }

    fn import_archive(&self, archive: &Path) -> Result<Vec<ImageRecord>> {
        ImageStoreImpl::import_archive(self, archive).map_err(Into::into)
    }
}
