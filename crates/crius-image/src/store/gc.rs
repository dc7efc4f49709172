//! Disk hygiene: what nothing references is moved aside under the store lock (a rename, fast)
//! and deleted after it, so a kill in between leaves only tmp/ garbage for the next start.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use crius_core::image::Digest;

use super::index::Index;
use super::layout::{Layout, random_suffix};
use super::usage::du;
use crate::error::ImageError;

/// What a collection (or the start-up orphan pass) freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    pub tmp_entries: usize,
    pub layers: usize,
    pub blobs: usize,
    /// Images whose files were missing, dropped from the index.
    pub dropped_images: Vec<String>,
    pub bytes_freed: u64,
}

impl OrphanReport {
    pub fn is_empty(&self) -> bool {
        self.tmp_entries == 0 && self.layers == 0 && self.blobs == 0 && self.dropped_images.is_empty()
    }
}

/// Entries of `dir` named by a digest hex that `keep` does not hold; stray names too.
fn unkept(dir: &Path, keep: &BTreeSet<Digest>) -> Result<Vec<PathBuf>, ImageError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(ImageError::io("listing", dir))? {
        let e = e.map_err(ImageError::io("listing", dir))?;
        let name = e.file_name();
        let kept = name.to_str().and_then(|n| Digest::from_sha256_hex(n).ok()).is_some_and(|d| keep.contains(&d));
        if !kept {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Moves every unreferenced layer and blob into one trash directory under tmp/. Called with
/// the state lock held; `pinned` are layers pulls in progress use but have not recorded yet.
pub(crate) fn move_garbage(
    layout: &Layout,
    index: &Index,
    pinned: &HashMap<Digest, usize>,
) -> Result<Option<(PathBuf, usize, usize)>, ImageError> {
    let mut keep_layers = index.referenced_layers();
    keep_layers.extend(pinned.keys().cloned());
    let layers = unkept(&layout.layers_dir(), &keep_layers)?;
    let blobs = unkept(&layout.blobs_dir(), &index.referenced_blobs())?;
    if layers.is_empty() && blobs.is_empty() {
        return Ok(None);
    }
    let trash = layout.tmp_dir().join(format!("trash-{}", random_suffix()));
    fs::create_dir(&trash).map_err(ImageError::io("creating", &trash))?;
    for (i, p) in layers.iter().chain(blobs.iter()).enumerate() {
        let to = trash.join(i.to_string());
        fs::rename(p, &to).map_err(ImageError::io("moving aside", p))?;
    }
    Ok(Some((trash, layers.len(), blobs.len())))
}

/// Deletes a trash directory; returns the bytes it held.
pub(crate) fn empty_trash(trash: &Path) -> u64 {
    let bytes = du(trash).bytes;
    if let Err(e) = fs::remove_dir_all(trash) {
        tracing::warn!(path = %trash.display(), error = %e, "cannot delete unreferenced image data; the next start will");
    }
    bytes
}

/// Empties tmp/: at start nothing is in progress, so all of it is what a cut pull left.
pub(crate) fn clear_tmp(layout: &Layout) -> Result<(usize, u64), ImageError> {
    let tmp = layout.tmp_dir();
    let mut count = 0;
    let mut bytes = 0;
    for e in fs::read_dir(&tmp).map_err(ImageError::io("listing", &tmp))? {
        let e = e.map_err(ImageError::io("listing", &tmp))?;
        let p = e.path();
        bytes += du(&p).bytes;
        let removed = if p.is_dir() && !p.is_symlink() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        removed.map_err(ImageError::io("removing", &p))?;
        count += 1;
    }
    Ok((count, bytes))
}

/// Drops index entries whose config, manifest or layers are gone (someone deleted files by hand),
/// so the store never reports an image it cannot run.
pub(crate) fn drop_incomplete(layout: &Layout, index: &mut Index) -> Vec<String> {
    let broken: Vec<Digest> = index
        .images
        .values()
        .filter(|i| {
            !layout.blob(&i.id).is_file()
                || !layout.blob(&i.manifest_digest).is_file()
                || i.layers.iter().any(|l| !layout.layer(&l.chain_id).is_dir())
        })
        .map(|i| i.id.clone())
        .collect();
    for id in &broken {
        index.images.remove(id);
    }
    broken.iter().map(|d| d.to_string()).collect()
}
