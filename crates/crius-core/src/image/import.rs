//! Import: an image archive on this node's disk loaded into the store, for air-gapped nodes.
//! Not a CRI call; crius's admin API and CLI use it while the daemon runs.

use std::path::Path;

use super::{ImageRecord, ImageService};
use crate::error::{Error, Result};

impl ImageService {
    /// Imports every image of the OCI layout or docker-archive tarball at `archive`, which must
    /// be an absolute path to a regular file: the daemon's working directory is not the caller's.
    pub fn import(&self, archive: &Path) -> Result<Vec<ImageRecord>> {
        if !archive.is_absolute() {
            return Err(Error::invalid(format!(
                "the archive path {} is relative: give an absolute path (the daemon does not share your \
                 working directory)",
                archive.display()
            )));
        }
        let meta = std::fs::metadata(archive).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(format!("no image archive at {}", archive.display())),
            _ => Error::invalid(format!("cannot read the image archive {}: {e}", archive.display())),
        })?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{} is not a regular file: give an image tarball (OCI layout or docker-archive)",
                archive.display()
            )));
        }
        self.store.import_archive(archive)
    }
}
