//! Errors of the image store. Registry errors name the registry, the reference and the HTTP
//! status; store errors name the path. One conversion maps them to the domain's kinds.

use std::path::PathBuf;

use crius_core::{Error, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("registry {registry} refused the credentials for {reference} (HTTP {status}){hint}")]
    Unauthorized { registry: String, reference: String, status: u16, hint: &'static str },
    #[error("registry {registry} has no {what} for {reference} (HTTP 404)")]
    NotFound { registry: String, reference: String, what: &'static str },
    #[error("registry {registry} answered HTTP {status} for {what} of {reference}: {body}")]
    RegistryStatus { registry: String, reference: String, what: String, status: u16, body: String },
    #[error("registry {registry} cannot be reached for {reference}")]
    Unreachable {
        registry: String,
        reference: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} failed the protocol for {what} of {reference}")]
    Protocol {
        registry: String,
        reference: String,
        what: String,
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    #[error("getting a token from {realm} for {reference} failed (HTTP {status}): {body}")]
    TokenRefused { realm: String, reference: String, status: u16, body: String },
    #[error("{what} of {reference} from {registry} made no progress for {seconds} s; giving up")]
    NoProgress { registry: String, reference: String, what: String, seconds: u64 },
    #[error("{what} failed verification: expected digest {expected}, got {actual}; nothing was kept")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("{what} has {actual} bytes, but its descriptor says {expected}; nothing was kept")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("{what} is larger than the {limit} bytes allowed")]
    TooLarge { what: String, limit: u64 },
    #[error("the manifest of {reference} is not usable: {why}")]
    BadManifest { reference: String, why: String },
    #[error("the image config {digest} of {reference} is not usable: {why}")]
    BadConfig { reference: String, digest: String, why: String },
    #[error("layer {digest} of {reference} has media type {media_type}, which crius cannot unpack")]
    UnsupportedLayer { reference: String, digest: String, media_type: String },
    #[error("{reference} has no image for platform {platform}; it has: {available}")]
    NoMatchingPlatform { reference: String, platform: String, available: String },
    #[error("{reference}: every mirror failed and the upstream is turned off (upstream = false): {attempts}")]
    MirrorsFailed { reference: String, attempts: String, all_not_found: bool },
    #[error("unpacking layer {digest} of {reference}")]
    Unpack {
        reference: String,
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid image index")]
    IndexCorrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the image store {path} is in use by another process (a running crius daemon?): stop it first")]
    Locked { path: PathBuf },
    #[error("image {id} is not in the store")]
    ImageNotFound { id: String },
    #[error("{path} is not an OCI image layout nor a docker-archive: {why}")]
    BadArchive { path: PathBuf, why: String },
    #[error("{what} was cancelled: the store is shutting down")]
    Cancelled { what: String },
    #[error("configuration: {0}")]
    Config(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {entry:?} would write outside the layer: {why}")]
    Escape { entry: String, why: &'static str },
    #[error("entry {entry:?}: {why}")]
    BadEntry { entry: String, why: String },
    #[error("reading the layer's tar stream")]
    Tar(#[source] std::io::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the uncompressed layer has digest {actual}, but the image config says {expected}")]
    DiffIdMismatch { expected: String, actual: String },
}

impl UnpackError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> UnpackError {
        let path = path.into();
        move |source| UnpackError::Io { op, path, source }
    }
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }

    /// The domain's kind for this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound { .. } | ImageError::ImageNotFound { .. } => ErrorKind::NotFound,
            ImageError::MirrorsFailed { all_not_found: true, .. } => ErrorKind::NotFound,
            ImageError::Unauthorized { .. } | ImageError::TokenRefused { .. } => ErrorKind::FailedPrecondition,
            ImageError::Unreachable { .. }
            | ImageError::NoProgress { .. }
            | ImageError::MirrorsFailed { .. }
            | ImageError::Locked { .. }
            | ImageError::Cancelled { .. } => ErrorKind::Unavailable,
            ImageError::RegistryStatus { status, .. } if *status >= 500 || *status == 429 => ErrorKind::Unavailable,
            ImageError::NoMatchingPlatform { .. }
            | ImageError::UnsupportedLayer { .. }
            | ImageError::BadArchive { .. }
            | ImageError::Config(_) => ErrorKind::InvalidArgument,
            ImageError::RegistryStatus { .. }
            | ImageError::Protocol { .. }
            | ImageError::DigestMismatch { .. }
            | ImageError::SizeMismatch { .. }
            | ImageError::TooLarge { .. }
            | ImageError::BadManifest { .. }
            | ImageError::BadConfig { .. }
            | ImageError::Unpack { .. }
            | ImageError::Io { .. }
            | ImageError::IndexCorrupt { .. } => ErrorKind::Internal,
        }
    }
}

impl From<ImageError> for Error {
    fn from(err: ImageError) -> Error {
        match err.kind() {
            ErrorKind::Internal => Error::internal("image store", err),
            kind => {
                // The whole chain is the message a person reads at the client.
                let mut message = err.to_string();
                let mut cause = std::error::Error::source(&err);
                while let Some(c) = cause {
                    message.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                Error::new(kind, message)
            }
        }
    }
}
