//! PullImage: resolve the reference on the first endpoint that has it, fetch the config, then
//! every missing layer in parallel (bounded), each unpacked while it streams, then record the
//! image in one atomic index write.

mod layer;
mod progress;
mod resolve;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crius_core::image::{Digest, ImageRecord, ImageRef, LayerInfo, RegistryAuth};

use crate::digest::chain_ids;
use crate::error::ImageError;
use crate::manifest::{ConfigFile, MAX_CONFIG_BYTES};
use crate::store::{ImageStoreImpl, Inner};
use progress::Progress;

impl ImageStoreImpl {
    /// Pulls `reference` (async form; the port's `pull` blocks on this).
    pub async fn pull(&self, reference: &ImageRef, auth: &RegistryAuth) -> Result<ImageRecord, ImageError> {
        // Spawned, so a caller that gives up does not cut the pull: a retry finds the result.
        let inner = self.inner.clone();
        let (r, a) = (reference.clone(), auth.clone());
        let task = self.runtime.spawn(async move { inner.pull(&r, &a).await });
        task.await.map_err(|e| ImageError::Cancelled { what: format!("pulling {reference}: {e}") })?
    }
}

impl Inner {
    /// A pull that fails leaves nothing: the layers it had already put in place are collected
    /// (unless another image or pull uses them).
    pub(crate) async fn pull(
        self: &Arc<Self>,
        reference: &ImageRef,
        auth: &RegistryAuth,
    ) -> Result<ImageRecord, ImageError> {
        let result = self.pull_uncollected(reference, auth).await;
        if let Err(e) = &result {
            tracing::warn!(image = %reference, error = %e, "pull failed");
            self.collect_garbage();
        }
        result
    }

    async fn pull_uncollected(
        self: &Arc<Self>,
        reference: &ImageRef,
        auth: &RegistryAuth,
    ) -> Result<ImageRecord, ImageError> {
        let started = Instant::now();
        let shown = reference.to_string();
        let resolved = resolve::resolve(self, reference, auth).await?;
        let tag = reference.recorded_tag();
        let repo_digest = reference.digested_name(&resolved.top_digest);

        let known = self.state().index.by_manifest(&resolved.manifest_digest).map(|i| i.id.clone());
        if let Some(id) = known {
            let record = self.commit_names(&id, tag.as_deref(), &repo_digest)?;
            tracing::info!(image = %shown, id = %id, "image is already in the store; names recorded");
            return Ok(record);
        }

        let clients = &resolved.clients;
        let config_digest = parse_digest(&resolved.manifest.config.digest, &shown)?;
        let config_size = resolved.manifest.config.size;
        let config_bytes = layer::from_first(clients, &format!("config {config_digest}"), |client| {
            client.small_blob(&config_digest, config_size, MAX_CONFIG_BYTES)
        })
        .await?;
        let bad_config =
            |why: String| ImageError::BadConfig { reference: shown.clone(), digest: config_digest.to_string(), why };
        let config = ConfigFile::parse(&config_bytes).map_err(bad_config)?;
        let diff_ids = config.diff_ids().map_err(bad_config)?;
        let layers = &resolved.manifest.layers;
        if diff_ids.len() != layers.len() {
            return Err(bad_config(format!("{} diff_ids for {} layers in the manifest", diff_ids.len(), layers.len())));
        }
        let chains = chain_ids(&diff_ids);
        let digests = layers.iter().map(|l| parse_digest(&l.digest, &shown)).collect::<Result<Vec<_>, _>>()?;

        let _pins = PinGuard::new(self, &chains);
        let work = self.layout.work_dir("pull")?;
        let progress = Progress::new(&shown, layers.iter().map(|l| l.size).sum(), layers.len());
        let _ticker = progress.clone().tick_every(std::time::Duration::from_secs(5));
        let siblings = layer::Siblings::default();
        let jobs = layers.iter().enumerate().map(|(i, desc)| {
            let job = layer::LayerJob {
                reference: &shown,
                digest: &digests[i],
                size: desc.size,
                diff_id: &diff_ids[i],
                chain_id: &chains[i],
                siblings: &siblings,
            };
            self.ensure_layer(clients, job, work.path(), &progress)
        });
        // Every job runs to its end (a failed one stops the others early): a job dropped
        // mid-stream would leave its unpacker writing into the work dir while it is removed.
        let unpacked_sizes = siblings.first_error(futures_util::future::join_all(jobs).await)?;

        let layer_infos: Vec<LayerInfo> = (0..layers.len())
            .map(|i| LayerInfo {
                chain_id: chains[i].clone(),
                diff_id: diff_ids[i].clone(),
                digest: digests[i].clone(),
                blob_size: layers[i].size,
                unpacked_size: unpacked_sizes[i],
            })
            .collect();
        let record = ImageRecord {
            id: config_digest.clone(),
            repo_tags: vec![],
            repo_digests: vec![],
            manifest_digest: resolved.manifest_digest.clone(),
            size: unpacked_sizes.iter().sum(),
            pinned: false,
            config: config.info(),
            layers: layer_infos,
        };
        let blobs = [(&config_digest, &config_bytes[..]), (&resolved.manifest_digest, &resolved.manifest_bytes[..])];
        let record = self.commit(record, &blobs, tag.as_deref(), Some(&repo_digest))?;
        progress.finished(started.elapsed());
        Ok(record)
    }

    /// Records a complete image: its blobs, then the index entry (the moment it becomes visible).
    pub(crate) fn commit(
        &self,
        record: ImageRecord,
        blobs: &[(&Digest, &[u8])],
        tag: Option<&str>,
        repo_digest: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        let mut state = self.state();
        for (digest, bytes) in blobs {
            let path = self.layout.blob(digest);
            if !path.is_file() {
                self.layout.write_atomic(&path, bytes)?;
            }
        }
        let mut next = state.index.clone();
        let record = next.put(record, tag, repo_digest);
        self.layout.write_atomic(&self.layout.index_path(), &next.to_bytes())?;
        state.index = next;
        Ok(record)
    }

    fn commit_names(&self, id: &Digest, tag: Option<&str>, repo_digest: &str) -> Result<ImageRecord, ImageError> {
        let mut state = self.state();
        let existing =
            state.index.images.get(id).cloned().ok_or_else(|| ImageError::ImageNotFound { id: id.to_string() })?;
        let mut next = state.index.clone();
        let record = next.put(existing, tag, Some(repo_digest));
        if next.images.get(id) != state.index.images.get(id) || tag.is_some() {
            self.layout.write_atomic(&self.layout.index_path(), &next.to_bytes())?;
            state.index = next;
        }
        Ok(record)
    }
}

pub(crate) fn parse_digest(s: &str, reference: &str) -> Result<Digest, ImageError> {
    Digest::parse(s).map_err(|e| ImageError::BadManifest { reference: reference.to_string(), why: e.to_string() })
}

/// Keeps layers a pull uses out of garbage collection until the pull has recorded its image.
pub(crate) struct PinGuard<'a> {
    inner: &'a Inner,
    chains: Vec<Digest>,
}

impl<'a> PinGuard<'a> {
    pub(crate) fn new(inner: &'a Inner, chains: &[Digest]) -> Self {
        let mut state = inner.state();
        for c in chains {
            *state.pins.entry(c.clone()).or_insert(0) += 1;
        }
        PinGuard { inner, chains: chains.to_vec() }
    }
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        let pins: &mut HashMap<Digest, usize> = &mut state.pins;
        for c in &self.chains {
            if let Some(n) = pins.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(c);
                }
            }
        }
    }
}
