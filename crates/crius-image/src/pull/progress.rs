//! Pull progress, logged at info level: periodically while layers stream, and once at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub(crate) struct Progress {
    image: String,
    total_bytes: u64,
    total_layers: usize,
    bytes: AtomicU64,
    downloaded: AtomicUsize,
    present: AtomicUsize,
}

impl Progress {
    pub(crate) fn new(image: &str, total_bytes: u64, total_layers: usize) -> Arc<Progress> {
        Arc::new(Progress {
            image: image.to_string(),
            total_bytes,
            total_layers,
            bytes: AtomicU64::new(0),
            downloaded: AtomicUsize::new(0),
            present: AtomicUsize::new(0),
        })
    }

    pub(crate) fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn layer_present(&self) {
        self.present.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn layer_downloaded(&self, digest: &str, bytes: u64, secs: f64) {
        let done = self.downloaded.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            image = %self.image,
            layer = digest,
            bytes,
            seconds = format!("{secs:.2}"),
            layers_downloaded = done,
            layers = self.total_layers,
            "layer downloaded and unpacked"
        );
    }

    /// Logs every `every` until the returned guard is dropped.
    pub(crate) fn tick_every(self: Arc<Self>, every: Duration) -> Ticker {
        let handle = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.tick().await;
            loop {
                interval.tick().await;
                tracing::info!(
                    image = %self.image,
                    bytes = self.bytes.load(Ordering::Relaxed),
                    total_bytes = self.total_bytes,
                    layers_done = self.downloaded.load(Ordering::Relaxed) + self.present.load(Ordering::Relaxed),
                    layers = self.total_layers,
                    "pulling"
                );
            }
        });
        Ticker(handle)
    }

    pub(crate) fn finished(&self, took: Duration) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let mib_s = if secs > 0.0 { bytes as f64 / 1_048_576.0 / secs } else { 0.0 };
        tracing::info!(
            image = %self.image,
            bytes_downloaded = bytes,
            layers = self.total_layers,
            layers_downloaded = self.downloaded.load(Ordering::Relaxed),
            layers_present = self.present.load(Ordering::Relaxed),
            seconds = format!("{secs:.2}"),
            mib_per_s = format!("{mib_s:.1}"),
            "image pulled"
        );
    }
}

pub(crate) struct Ticker(tokio::task::JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
