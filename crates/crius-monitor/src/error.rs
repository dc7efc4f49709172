//! The crate's error enum. `port.rs` maps it onto crius-core's error kinds.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{kind} id {id:?} is not usable in a path: {reason}")]
    InvalidId { kind: &'static str, id: String, reason: &'static str },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: crius_sys::Error,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("starting the monitor {exe}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the monitor of pod {pod_id} did not report ready within {timeout:?}")]
    ReadyTimeout { pod_id: String, timeout: Duration },
    #[error("the monitor of pod {pod_id} failed: {message}")]
    MonitorFailed { pod_id: String, message: String },
    #[error("the pod init failed: {0}")]
    Init(String),
    #[error("the spec sent to the monitor is not valid: {0}")]
    BadSpec(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the monitor refused the request: {0}")]
    Refused(String),
    #[error("no monitor answers for pod {pod_id} at {socket}")]
    NotRunning {
        pod_id: String,
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl MonitorError {
    pub(crate) fn sys(what: impl Into<String>, source: crius_sys::Error) -> Self {
        MonitorError::Sys { what: what.into(), source }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        MonitorError::Io { what: what.into(), source }
    }

    /// The crius-sys error underneath, if any.
    pub fn sys_source(&self) -> Option<&crius_sys::Error> {
        match self {
            MonitorError::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = MonitorError> = std::result::Result<T, E>;

/// An error and its causes on one line ("a: b: c"), for messages that cross a process boundary
/// as text (the ready line, a socket reply, the init's report).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
