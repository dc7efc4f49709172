//! Shared set-up of the store tests: a store on a temp root, registries config from TOML.

#![allow(dead_code)]

pub mod fake_registry;

use std::path::Path;

use crius_core::image::{Digest, ImageRecord, ImageRef, RegistryAuth};
use crius_image::{ImageError, ImageStoreImpl, OrphanReport, PullConfig, Registries, StoreOptions};

pub struct Store {
    pub dir: tempfile::TempDir,
    store: Option<ImageStoreImpl>,
}

impl Store {
    pub fn new(registries_toml: &str) -> Store {
        Self::with_pull(registries_toml, PullConfig::default())
    }

    pub fn with_pull(registries_toml: &str, pull: PullConfig) -> Store {
        let dir = tempfile::Builder::new().prefix("crius-image-test-").tempdir().unwrap();
        let (store, _) = open(dir.path(), registries_toml, pull).unwrap();
        Store { dir, store: Some(store) }
    }

    pub fn store(&self) -> &ImageStoreImpl {
        self.store.as_ref().expect("the store is open")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub async fn pull(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        self.pull_auth(reference, &RegistryAuth::default()).await
    }

    pub async fn pull_auth(&self, reference: &str, auth: &RegistryAuth) -> Result<ImageRecord, ImageError> {
        let r = ImageRef::parse(reference).unwrap();
        self.store().pull(&r, auth).await
    }

    /// Entries of a store directory ("layers", "blobs/sha256", "tmp").
    pub fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root().join("images").join(sub))
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Reopens the store (as a restart would); returns the orphan report.
    pub fn reopen(&mut self) -> OrphanReport {
        // The old store lets go of its lock first.
        self.store = None;
        let (store, report) = open(self.dir.path(), "", PullConfig::default()).unwrap();
        self.store = Some(store);
        report
    }

    pub fn layer_dir(&self, chain: &Digest) -> std::path::PathBuf {
        self.store().layer_dir(chain)
    }
}

pub fn open(
    root: &Path,
    registries_toml: &str,
    pull: PullConfig,
) -> Result<(ImageStoreImpl, OrphanReport), ImageError> {
    let registries: Registries = toml::from_str(registries_toml).unwrap();
    ImageStoreImpl::open(StoreOptions { root: root.to_path_buf(), registries, pull }, tokio::runtime::Handle::current())
}

pub fn digest(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
