//! Error types, one enum per layer.

use std::io;

/// SPDY framing, compression and session errors.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY frame of {0} bytes is over the limit")]
    FrameTooLarge(usize),
    #[error("SPDY header block: {0}")]
    BadHeaderBlock(&'static str),
    #[error("SPDY header block inflates past {0} bytes")]
    HeaderBlockTooLarge(usize),
    #[error("SPDY header compression: {0}")]
    Compression(String),
    #[error("SPDY protocol error: {0}")]
    Protocol(&'static str),
    #[error("SPDY flow control: {0}")]
    FlowControl(&'static str),
    #[error("the SPDY connection is closed")]
    Closed,
    #[error("SPDY stream {0} was reset by the peer (status {1})")]
    Reset(u32, u32),
    #[error("SPDY connection I/O")]
    Io(#[from] io::Error),
}

/// WebSocket framing errors.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    #[error("WebSocket message of {0} bytes is over the limit")]
    MessageTooLarge(usize),
    #[error("the WebSocket connection is closed")]
    Closed,
    #[error("WebSocket connection I/O")]
    Io(#[from] io::Error),
}

/// A CRI streaming request refused before any URL is made (the CRI handler maps these to
/// InvalidArgument, or ResourceExhausted for `TooManyInFlight`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(String),
    #[error("too many streaming requests in flight ({0}); retry in a minute")]
    TooManyInFlight(usize),
}

/// What a runtime backend reports when it cannot run the session (a non-zero exit is not an
/// error: it is the session's result).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("container {0:?} not found")]
    NotFound(String),
    #[error("{0}")]
    Runtime(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl BackendError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        BackendError::Io { context: context.into(), source }
    }
}

/// Starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the streaming server to {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("reading TLS material {path}")]
    TlsFile {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
}
