//! The store: the in-memory index and its file, the layer pins of pulls in progress, and every
//! operation but the pull itself (in `crate::pull`).

pub mod gc;
pub mod index;
pub mod layout;
pub mod usage;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crius_core::image::{Digest, DirUsage, FsUsage, ImageRecord};
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::{Semaphore, watch};

pub use gc::OrphanReport;
use index::{Hold, Index};
use layout::Layout;

use crate::config::{PullConfig, Registries};
use crate::error::ImageError;

/// Where the store lives and how pulls behave.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// crius's root (`/var/lib/crius`): the store is `<root>/images`.
    pub root: PathBuf,
    pub registries: Registries,
    pub pull: PullConfig,
}

/// The image store. Cheap to clone; one per root (an exclusive lock on `images/lock`).
#[derive(Clone)]
pub struct ImageStoreImpl {
    pub(crate) inner: Arc<Inner>,
    pub(crate) runtime: tokio::runtime::Handle,
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) registries: Registries,
    pub(crate) clients: crate::registry::Clients,
    pub(crate) state: Mutex<State>,
    /// Layers being downloaded, by chain id: a second pull of the same layer waits for the first.
    pub(crate) inflight: Mutex<HashMap<Digest, watch::Receiver<Option<bool>>>>,
    /// Layer downloads at once, over all pulls.
    pub(crate) download_slots: Semaphore,
    _lock: Flock<File>,
}

pub(crate) struct State {
    pub(crate) index: Index,
    /// Layers that pulls in progress use, by chain id, with a count: never collected.
    pub(crate) pins: HashMap<Digest, usize>,
}

impl ImageStoreImpl {
    /// Opens (creating) the store under `options.root`, and runs the orphan pass: what a cut
    /// pull left in tmp/, layers and blobs no image references, and images with missing files.
    /// `runtime` runs the pulls.
    pub fn open(options: StoreOptions, runtime: tokio::runtime::Handle) -> Result<(Self, OrphanReport), ImageError> {
        options.registries.validate()?;
        options.pull.validate()?;
        let layout = Layout::new(&options.root);
        layout.create()?;
        let lock = lock(&layout.lock_path())?;
        let mut index = Index::load(&layout.index_path())?;
        load_holds(&layout, &mut index)?;

        let mut report = OrphanReport::default();
        let (tmp_entries, tmp_bytes) = gc::clear_tmp(&layout)?;
        report.tmp_entries = tmp_entries;
        report.bytes_freed += tmp_bytes;
        report.dropped_images = gc::drop_incomplete(&layout, &mut index);
        if !report.dropped_images.is_empty() {
            layout.write_atomic(&layout.index_path(), &index.to_bytes())?;
        }
        if let Some((trash, layers, blobs)) = gc::move_garbage(&layout, &index, &HashMap::new())? {
            report.layers = layers;
            report.blobs = blobs;
            report.bytes_freed += gc::empty_trash(&trash);
        }

        let clients = crate::registry::Clients::new(&options.pull)?;
        let inner = Inner {
            layout,
            download_slots: Semaphore::new(options.pull.max_concurrent_downloads),
            registries: options.registries,
            clients,
            state: Mutex::new(State { index, pins: HashMap::new() }),
            inflight: Mutex::new(HashMap::new()),
            _lock: lock,
        };
        Ok((ImageStoreImpl { inner: Arc::new(inner), runtime }, report))
    }

    pub fn images_dir(&self) -> &Path {
        &self.inner.layout.root
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.inner.state().index.images.values().cloned().collect()
    }

    pub fn get(&self, id: &Digest) -> Option<ImageRecord> {
        self.inner.state().index.images.get(id).cloned()
    }

    pub fn config_json(&self, id: &Digest) -> Result<Vec<u8>, ImageError> {
        if self.get(id).is_none() {
            return Err(ImageError::ImageNotFound { id: id.to_string() });
        }
        let path = self.inner.layout.blob(id);
        std::fs::read(&path).map_err(ImageError::io("reading", &path))
    }

    /// The directory of a layer (by chain id).
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.inner.layout.layer(chain_id)
    }

    pub fn untag(&self, id: &Digest, name: &str) -> Result<(), ImageError> {
        let mut state = self.inner.state();
        let Some(img) = state.index.images.get_mut(id) else { return Ok(()) };
        img.repo_tags.retain(|t| t != name);
        img.repo_digests.retain(|t| t != name);
        self.inner.persist(&state)?;
        Ok(())
    }

    /// Removes the image; then deletes what nothing references any more.
    pub fn remove(&self, id: &Digest) -> Result<OrphanReport, ImageError> {
        let trash = {
            let mut state = self.inner.state();
            if state.index.images.remove(id).is_none() {
                return Ok(OrphanReport::default());
            }
            self.inner.persist(&state)?;
            gc::move_garbage(&self.inner.layout, &state.index, &state.pins)?
        };
        Ok(self.inner.finish_gc(trash))
    }

    pub fn hold_layers(&self, holder: &str, id: &Digest) -> Result<Vec<PathBuf>, ImageError> {
        let mut state = self.inner.state();
        let img = state.index.images.get(id).ok_or_else(|| ImageError::ImageNotFound { id: id.to_string() })?;
        let layers: Vec<Digest> = img.layers.iter().map(|l| l.chain_id.clone()).collect();
        let paths = layers.iter().map(|c| self.inner.layout.layer(c)).collect();
        let hold = Hold { image: id.clone(), layers };
        if state.index.holds.get(holder) != Some(&hold) {
            let path = self.inner.layout.hold(holder)?;
            let bytes = serde_json::to_vec(&hold).map_err(|e| ImageError::Config(format!("encoding a hold: {e}")))?;
            // No flush: a hold only matters while its container's rootfs is mounted, which a
            // power loss ends anyway; a crash of crius keeps the file.
            self.inner.layout.write_replace_volatile(&path, &bytes)?;
            state.index.holds.insert(holder.to_string(), hold);
        }
        Ok(paths)
    }

    pub fn release_layers(&self, holder: &str) -> Result<OrphanReport, ImageError> {
        let trash = {
            let mut state = self.inner.state();
            if state.index.holds.remove(holder).is_none() {
                return Ok(OrphanReport::default());
            }
            let path = self.inner.layout.hold(holder)?;
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ImageError::io("removing", &path)(e));
                }
                _ => {}
            }
            gc::move_garbage(&self.inner.layout, &state.index, &state.pins)?
        };
        Ok(self.inner.finish_gc(trash))
    }

    pub fn usage(&self) -> FsUsage {
        let l = &self.inner.layout;
        let images = usage::du(&l.root);
        let containers = usage::du(&l.containers);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        FsUsage {
            timestamp_nanos: i64::try_from(now.as_nanos()).unwrap_or(i64::MAX),
            images: DirUsage {
                path: l.root.display().to_string(),
                used_bytes: images.bytes,
                inodes_used: images.inodes,
            },
            containers: DirUsage {
                path: l.containers.display().to_string(),
                used_bytes: containers.bytes,
                inodes_used: containers.inodes,
            },
        }
    }
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn persist(&self, state: &State) -> Result<(), ImageError> {
        self.layout.write_atomic(&self.layout.index_path(), &state.index.to_bytes())
    }

    /// Deletes whatever nothing references (failures only logged: the next start retries).
    pub(crate) fn collect_garbage(&self) -> OrphanReport {
        let trash = {
            let state = self.state();
            gc::move_garbage(&self.layout, &state.index, &state.pins)
        };
        match trash {
            Ok(t) => self.finish_gc(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot collect unreferenced image data; the next start will");
                OrphanReport::default()
            }
        }
    }

    pub(crate) fn finish_gc(&self, trash: Option<(PathBuf, usize, usize)>) -> OrphanReport {
        let Some((trash, layers, blobs)) = trash else { return OrphanReport::default() };
        let bytes_freed = gc::empty_trash(&trash);
        tracing::info!(layers, blobs, bytes_freed, "removed image data nothing uses any more");
        OrphanReport { layers, blobs, bytes_freed, ..Default::default() }
    }
}

fn lock(path: &Path) -> Result<Flock<File>, ImageError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(ImageError::io("opening", path))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| ImageError::Locked { path: path.to_path_buf() })
}

/// The holds in `holds/` (a hold left in an older index.json is moved there first).
fn load_holds(layout: &Layout, index: &mut Index) -> Result<(), ImageError> {
    if !index.holds.is_empty() {
        for (holder, hold) in &index.holds {
            let bytes = serde_json::to_vec(hold).map_err(|e| ImageError::Config(format!("encoding a hold: {e}")))?;
            layout.write_atomic(&layout.hold(holder)?, &bytes)?;
        }
        layout.write_atomic(&layout.index_path(), &index.to_bytes())?;
    }
    let dir = layout.holds_dir();
    let entries = std::fs::read_dir(&dir).map_err(ImageError::io("reading", &dir))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(holder) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string) else {
            continue;
        };
        match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Hold>(&b).ok()) {
            Some(hold) => {
                index.holds.insert(holder, hold);
            }
            // Not one of ours, or cut short by a crash mid-write (cannot happen: written by
            // rename): keep nothing on its word.
            None => tracing::warn!(path = %path.display(), "unreadable layer hold; ignored"),
        }
    }
    Ok(())
}
