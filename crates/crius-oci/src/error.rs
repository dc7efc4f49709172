//! The crate's error enum: what failed, with the runtime binary, the subcommand and the
//! container id, and the runtime's own message where it gave one.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("container id {id:?} is not valid: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("starting {binary} {subcommand}")]
    Spawn {
        binary: PathBuf,
        subcommand: &'static str,
        #[source]
        source: io::Error,
    },
    /// The runtime ran and failed; `message` is what it said (its error log line, or stderr).
    #[error("{binary} {subcommand} {container_id} failed ({status}): {message}")]
    Failed { binary: PathBuf, subcommand: &'static str, container_id: String, status: String, message: String },
    /// The runtime reported that it does not know the container.
    #[error("container {container_id} does not exist in {binary}'s root {root}")]
    NotFound { binary: PathBuf, root: PathBuf, container_id: String },
    #[error("{binary} {subcommand} {container_id} did not finish within {timeout:?}; it was killed")]
    Timeout { binary: PathBuf, subcommand: &'static str, container_id: String, timeout: Duration },
    #[error("{binary} state {container_id} printed something that is not a container state: {reason}")]
    BadState { binary: PathBuf, container_id: String, reason: String },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: crius_sys::Error,
    },
    #[error("encoding the resources of container {container_id}")]
    Resources {
        container_id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl OciError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        OciError::Io { what, path: path.into(), source }
    }

    /// Whether the runtime said the container does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OciError::NotFound { .. })
    }
}

pub type Result<T, E = OciError> = std::result::Result<T, E>;
