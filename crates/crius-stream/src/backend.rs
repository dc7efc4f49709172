//! What the server needs from the runtime, as traits the daemon wires (and tests fake).
//!
//! Sessions are cancelled by dropping their future: when the client goes away (or the server
//! shuts down) the server drops the backend's future, so implementations must release what they
//! hold on drop — kill the exec'd process, close sockets.

use std::pin::Pin;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::BackendError;
use crate::request::{AttachRequest, ExecRequest, PortForwardRequest};

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// A terminal size as the client sends it on the resize stream (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The client's side of a remote command session. Absent streams were not requested. stdin ends
/// (EOF) when the client closes it; writes to stdout/stderr fail once the client is gone; resize
/// events end with the session.
pub struct SessionIo {
    pub stdin: Option<BoxRead>,
    pub stdout: Option<BoxWrite>,
    pub stderr: Option<BoxWrite>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// Runs a command in a container.
#[async_trait]
pub trait ExecBackend: Send + Sync {
    /// Runs `request.cmd` with the client's streams until it exits; returns its exit code (128 +
    /// signal when killed). An error means the command could not be run at all.
    async fn exec(&self, request: &ExecRequest, io: SessionIo) -> Result<i32, BackendError>;
}

/// Attaches to a running container's stdio (held by the pod's monitor).
#[async_trait]
pub trait AttachBackend: Send + Sync {
    /// Copies between the client and the container until the container's output ends, or the
    /// client's stdin ends for a container with `stdin_once`.
    async fn attach(&self, request: &AttachRequest, io: SessionIo) -> Result<(), BackendError>;
}

/// Opens connections to a pod's ports.
#[async_trait]
pub trait PortForwardBackend: Send + Sync {
    /// A TCP connection to `port` on the pod's loopback, inside its network namespace.
    async fn connect(&self, request: &PortForwardRequest, port: u16) -> Result<TcpStream, BackendError>;
}
