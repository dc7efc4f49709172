//! The image store: pulls from registries into a content-addressed store of unpacked layers.
//! Implemented by crius-image; blocking calls (a pull runs to completion even when the client
//! that asked for it goes away, so a retry finds the image).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::image::{Digest, FsUsage, ImageRecord, ImageRef, RegistryAuth};

pub trait ImageStore: Send + Sync {
    /// Pulls the image (or finds it already complete) and records `reference`'s tag or digest
    /// on it. NotFound when the registry has no such image, Unavailable when it cannot be reached,
    /// FailedPrecondition when the credentials are refused.
    fn pull(&self, reference: &ImageRef, auth: &RegistryAuth) -> Result<ImageRecord>;
    /// Every image, from memory.
    fn list(&self) -> Result<Vec<ImageRecord>>;
    /// The image config blob as stored (JSON), for verbose status.
    fn config_json(&self, id: &Digest) -> Result<Vec<u8>>;
    /// Removes one repo tag or repo digest name from image `id`; the image stays.
    fn untag(&self, id: &Digest, name: &str) -> Result<()>;
    /// Removes the image and all its names. Layers no image and no holder uses are deleted.
    /// Idempotent: an unknown id is success.
    fn remove(&self, id: &Digest) -> Result<()>;
    /// Disk usage of the image store and of the containers' writable layers.
    fn usage(&self) -> Result<FsUsage>;
    /// Keeps the layers of image `id` on disk for `holder` (a container id) until `release`,
    /// even if the image is removed; persisted across restarts. Returns the layer directories,
    /// lowest first (overlay's lowerdir wants them reversed). Holding twice is harmless.
    fn hold_layers(&self, holder: &str, id: &Digest) -> Result<Vec<PathBuf>>;
    /// Drops `holder`'s hold; layers nothing else uses are deleted. Idempotent.
    fn release_layers(&self, holder: &str) -> Result<()>;
    /// Loads every image of an OCI image layout or docker-archive tarball at `archive` (a file
    /// this process can read); InvalidArgument when it is neither. Nothing is kept on failure.
    fn import_archive(&self, archive: &Path) -> Result<Vec<ImageRecord>>;
}
