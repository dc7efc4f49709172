//! One layer: present already, being fetched by another pull (wait for it), or downloaded here
//! and unpacked while it streams, verified (blob digest and size, diff id) before it is renamed
//! into `layers/<chain-id>`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Buf, Bytes};
use crius_core::image::Digest;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::progress::Progress;
use crate::error::{ImageError, UnpackError};
use crate::registry::RegistryClient;
use crate::store::Inner;
use crate::store::usage::du;
use crate::unpack::{Unpacked, unpack_layer};

pub(crate) struct LayerJob<'a> {
    pub reference: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
    pub diff_id: &'a Digest,
    pub chain_id: &'a Digest,
    pub siblings: &'a Siblings,
}

/// The layer jobs of one pull: once one fails, the others stop at their next chunk.
#[derive(Default)]
pub(crate) struct Siblings {
    failed: AtomicBool,
}

impl Siblings {
    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn check(&self, digest: &Digest) -> Result<(), ImageError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(ImageError::Cancelled { what: format!("layer {digest}: another layer of the pull failed") });
        }
        Ok(())
    }

    /// The sizes, or the error that failed the pull (not a sibling's stop that followed it).
    pub(crate) fn first_error(&self, results: Vec<Result<u64, ImageError>>) -> Result<Vec<u64>, ImageError> {
        let mut sizes = Vec::with_capacity(results.len());
        let mut stopped = None;
        for result in results {
            match result {
                Ok(size) => sizes.push(size),
                Err(e @ ImageError::Cancelled { .. }) => stopped = stopped.or(Some(e)),
                Err(e) => return Err(e),
            }
        }
        match stopped {
            Some(e) => Err(e),
            None => Ok(sizes),
        }
    }
}

enum Role {
    Lead(watch::Sender<Option<bool>>),
    Wait(watch::Receiver<Option<bool>>),
}

impl Inner {
    /// Returns the bytes the unpacked layer takes.
    pub(crate) async fn ensure_layer(
        self: &Arc<Self>,
        clients: &[RegistryClient],
        job: LayerJob<'_>,
        work: &Path,
        progress: &Progress,
    ) -> Result<u64, ImageError> {
        loop {
            if let Some(size) = self.present_layer_size(job.chain_id) {
                progress.layer_present();
                return Ok(size);
            }
            let role = {
                let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                match inflight.get(job.chain_id) {
                    Some(rx) => Role::Wait(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        inflight.insert(job.chain_id.clone(), rx);
                        Role::Lead(tx)
                    }
                }
            };
            match role {
                Role::Wait(mut rx) => {
                    tracing::debug!(layer = %job.digest, "layer is being downloaded by another pull; waiting");
                    // Whatever the outcome (done, failed, or the other pull dropped), look again:
                    // a failure is retried here once, as this pull's own.
                    let _ = rx.wait_for(Option::is_some).await;
                }
                Role::Lead(tx) => {
                    let _entry = InflightEntry { inner: self, chain_id: job.chain_id };
                    let what = format!("layer {}", job.digest);
                    let result =
                        from_first(clients, &what, |client| self.download_layer(client, &job, work, progress)).await;
                    if result.is_err() {
                        job.siblings.fail();
                    }
                    let _ = tx.send(Some(result.is_ok()));
                    return result;
                }
            }
        }
    }

    fn present_layer_size(&self, chain_id: &Digest) -> Option<u64> {
        let dir = self.layout.layer(chain_id);
        if !dir.is_dir() {
            return None;
        }
        let known = self
            .state()
            .index
            .images
            .values()
            .flat_map(|i| i.layers.iter())
            .find(|l| &l.chain_id == chain_id)
            .map(|l| l.unpacked_size);
        Some(known.unwrap_or_else(|| du(&dir).bytes))
    }

    async fn download_layer(
        &self,
        client: &RegistryClient,
        job: &LayerJob<'_>,
        work: &Path,
        progress: &Progress,
    ) -> Result<u64, ImageError> {
        let _slot = self
            .download_slots
            .acquire()
            .await
            .map_err(|_| ImageError::Cancelled { what: format!("downloading layer {}", job.digest) })?;
        job.siblings.check(job.digest)?;
        let started = Instant::now();
        let dest = work.join(job.chain_id.hex());
        // What a failed attempt on another endpoint unpacked (its unpacker has finished).
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(ImageError::io("removing", &dest))?;
        }
        std::fs::create_dir(&dest).map_err(ImageError::io("creating", &dest))?;
        let mut stream = client.blob(job.digest).await?;

        let mut unpacker = Unpacker::start(dest.clone(), job.diff_id.clone());
        let what = format!("layer {}", job.digest);
        // oci-client hashes the chunks as they pass and fails the stream's end on a mismatch.
        let mut bytes = 0u64;
        let streamed: Result<(), ImageError> = async {
            while let Some(chunk) = client.timed(stream.next(), &what).await? {
                job.siblings.check(job.digest)?;
                let chunk = chunk.map_err(|e| client.stream_fault(e, &what))?;
                bytes += chunk.len() as u64;
                progress.add_bytes(chunk.len());
                if bytes > job.size {
                    return Err(ImageError::SizeMismatch { what: what.clone(), expected: job.size, actual: bytes });
                }
                unpacker.feed(chunk).await;
            }
            Ok(())
        }
        .await;
        // Always wait for the unpacker, so nothing writes into the work dir once it is removed.
        let unpacked = unpacker.finish().await;
        streamed?;
        if bytes != job.size {
            return Err(ImageError::SizeMismatch { what, expected: job.size, actual: bytes });
        }
        unpacked.map_err(|source| ImageError::Unpack {
            reference: job.reference.to_string(),
            digest: job.digest.to_string(),
            source,
        })?;

        let target = self.layout.layer(job.chain_id);
        if let Err(e) = std::fs::rename(&dest, &target) {
            // Another writer (an import) put the same layer in place first: keep that one.
            if !target.is_dir() {
                return Err(ImageError::io("renaming into place", &target)(e));
            }
        }
        let size = du(&target).bytes;
        progress.layer_downloaded(job.digest.as_str(), bytes, started.elapsed().as_secs_f64());
        Ok(size)
    }
}

/// `fetch` from each endpoint in turn until one succeeds. What a registry did wrong (missing,
/// refused, unreachable, stalled, wrong bytes) moves on to the next; a fault here (disk,
/// hostile content whose digest was right, a stopped pull) does not.
pub(crate) async fn from_first<'a, T, F, Fut>(
    clients: &'a [RegistryClient],
    what: &str,
    mut fetch: F,
) -> Result<T, ImageError>
where
    F: FnMut(&'a RegistryClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, ImageError>>,
{
    let mut failures = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        match fetch(client).await {
            Ok(v) => {
                if !failures.is_empty() {
                    tracing::info!(what, registry = %client.registry(), "fetched from a later endpoint");
                }
                return Ok(v);
            }
            Err(e) if i + 1 < clients.len() && registry_fault(&e) => {
                tracing::warn!(what, registry = %client.registry(), error = %e, "trying the next endpoint");
                failures.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(failures.pop().unwrap_or(ImageError::Cancelled { what: format!("{what}: no endpoint to fetch it from") }))
}

fn registry_fault(e: &ImageError) -> bool {
    matches!(
        e,
        ImageError::Unauthorized { .. }
            | ImageError::NotFound { .. }
            | ImageError::RegistryStatus { .. }
            | ImageError::Unreachable { .. }
            | ImageError::TokenRefused { .. }
            | ImageError::NoProgress { .. }
            | ImageError::DigestMismatch { .. }
            | ImageError::SizeMismatch { .. }
            | ImageError::TooLarge { .. }
    )
}

/// Removes a layer's in-flight entry when its download ends, however it ends.
struct InflightEntry<'a> {
    inner: &'a Inner,
    chain_id: &'a Digest,
}

impl Drop for InflightEntry<'_> {
    fn drop(&mut self) {
        self.inner.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(self.chain_id);
    }
}

/// The unpacking side of a download: a blocking thread reading the chunks sent to it.
struct Unpacker {
    tx: Option<mpsc::Sender<Bytes>>,
    handle: Option<tokio::task::JoinHandle<Result<Unpacked, UnpackError>>>,
    result: Option<Result<Unpacked, UnpackError>>,
}

impl Unpacker {
    fn start(dest: PathBuf, diff_id: Digest) -> Unpacker {
        // A few chunks of slack, so the network and the disk both keep busy.
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        let handle = tokio::task::spawn_blocking(move || {
            unpack_layer(ChannelReader { rx, current: Bytes::new() }, &dest, Some(&diff_id))
        });
        Unpacker { tx: Some(tx), handle: Some(handle), result: None }
    }

    async fn feed(&mut self, chunk: Bytes) {
        let Some(tx) = &self.tx else { return };
        if tx.send(chunk).await.is_err() {
            // The unpacker stopped before the stream did (an error, or trailing bytes after
            // the tar): keep its result; the rest is still hashed by the caller.
            self.tx = None;
            self.result = Some(self.join().await);
        }
    }

    async fn finish(mut self) -> Result<Unpacked, UnpackError> {
        self.tx = None;
        match self.result.take() {
            Some(r) => r,
            None => self.join().await,
        }
    }

    async fn join(&mut self) -> Result<Unpacked, UnpackError> {
        match self.handle.take() {
            Some(h) => {
                h.await.unwrap_or_else(|e| Err(UnpackError::Tar(std::io::Error::other(format!("unpack task: {e}")))))
            }
            None => Err(UnpackError::Tar(std::io::Error::other("unpack task already joined"))),
        }
    }
}

/// The chunks of a download as a blocking `Read`; the end of the channel is the end of the data.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
