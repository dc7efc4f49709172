//! Paths under `<root>/images`, and the two ways things land there: atomic file writes and
//! work directories that vanish unless their content is renamed into place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crius_core::image::Digest;

use crate::error::ImageError;

#[derive(Debug, Clone)]
pub struct Layout {
    /// `<root>/images`.
    pub root: PathBuf,
    /// `<root>/containers`: containers' writable layers, reported by ImageFsInfo.
    pub containers: PathBuf,
}

impl Layout {
    pub fn new(crius_root: &Path) -> Layout {
        Layout { root: crius_root.join("images"), containers: crius_root.join("containers") }
    }
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn layer(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// `holds/<holder>.json`: the layers a container keeps from GC, one small file each, so that
    /// CreateContainer and RemoveContainer do not rewrite the whole index.
    pub fn holds_dir(&self) -> PathBuf {
        self.root.join("holds")
    }
    pub fn hold(&self, holder: &str) -> Result<PathBuf, ImageError> {
        let ok = !holder.is_empty()
            && holder.len() <= 128
            && !holder.starts_with('.')
            && holder.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(ImageError::Config(format!("layer holder {holder:?} is not usable as a file name")));
        }
        Ok(self.holds_dir().join(format!("{holder}.json")))
    }

    pub fn create(&self) -> Result<(), ImageError> {
        for dir in [self.blobs_dir(), self.layers_dir(), self.tmp_dir(), self.holds_dir()] {
            fs::create_dir_all(&dir).map_err(ImageError::io("creating", &dir))?;
        }
        Ok(())
    }

    /// A fresh directory under tmp/, removed when dropped.
    pub fn work_dir(&self, what: &str) -> Result<WorkDir, ImageError> {
        let path = self.tmp_dir().join(format!("{what}-{}", random_suffix()));
        fs::create_dir(&path).map_err(ImageError::io("creating", &path))?;
        Ok(WorkDir { path })
    }

    /// Writes `bytes` to `dest` atomically: a temp file in tmp/ (same filesystem), fsync,
    /// rename, fsync of the directory. A crash leaves the old file or the new one.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<(), ImageError> {
        self.write_replace(dest, bytes, true)
    }

    /// The same without the flushes: a crash of the process leaves the old file or the new one
    /// (the page cache outlives it); only a power loss may lose the change.
    pub fn write_replace_volatile(&self, dest: &Path, bytes: &[u8]) -> Result<(), ImageError> {
        self.write_replace(dest, bytes, false)
    }

    fn write_replace(&self, dest: &Path, bytes: &[u8], durable: bool) -> Result<(), ImageError> {
        let tmp = self.tmp_dir().join(format!("write-{}", random_suffix()));
        let result = (|| {
            let mut f = File::create(&tmp).map_err(ImageError::io("creating", &tmp))?;
            f.write_all(bytes).map_err(ImageError::io("writing", &tmp))?;
            if durable {
                f.sync_all().map_err(ImageError::io("syncing", &tmp))?;
            }
            fs::rename(&tmp, dest).map_err(ImageError::io("renaming into place", dest))?;
            if durable && let Some(dir) = dest.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(ImageError::io("syncing", dir))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A directory under tmp/ that is removed on drop: whatever was not renamed out of it is work
/// that did not complete.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a work directory; the next start will");
        }
    }
}

pub fn random_suffix() -> String {
    let mut b = [0u8; 8];
    // Uniqueness only matters within tmp/; fall back to the time if the kernel says no.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = (t as u64).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
