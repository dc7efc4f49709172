//! crius's image store: pulls from OCI registries (Docker schema2 and OCI manifests, manifest
//! lists and indexes resolved to this host's platform, gzip, zstd and plain layers), a
//! content-addressed store under `<root>/images/`, and layers unpacked once into overlay-ready
//! directories shared between images.
//!
//! ```text
//! <root>/images/blobs/sha256/<hex>    manifests, indexes and configs, verified by digest
//! <root>/images/layers/<chain-hex>/   unpacked layers (overlayfs whiteouts), one per chain id
//! <root>/images/index.json            images: names, digests, configs, layers
//! <root>/images/holds/<holder>.json   layers a container keeps from GC (its image may go first)
//! <root>/images/tmp/                  work in progress; emptied at start
//! ```
//!
//! Everything lands by rename, and an image becomes visible only when index.json is rewritten:
//! a pull cut by an error or a kill leaves nothing visible, and [`ImageStoreImpl::open`] removes
//! what such a pull left behind.

pub mod config;
pub mod digest;
pub mod error;
pub mod import;
pub mod manifest;
pub mod platform;
pub mod port;
pub mod pull;
pub mod registry;
pub mod store;
pub mod unpack;

pub use config::{PullConfig, Registries, RegistryConfig};
pub use error::{ImageError, UnpackError};
pub use store::{ImageStoreImpl, OrphanReport, StoreOptions};
