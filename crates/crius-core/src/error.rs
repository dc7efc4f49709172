//! The domain's one error type. Each variant is a kind the gRPC edge maps to a status code.

use std::fmt;

/// What went wrong, as the caller should understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // The cause is part of the message a person reads at the client.
        let mut cause = self.source.as_deref().map(|s| s as &dyn std::error::Error);
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// A failure of something outside the domain (a port), with what crius was doing.
    pub fn internal(message: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error { kind: ErrorKind::Internal, message: message.into(), source: Some(source.into()) }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// Keeps the kind of a port error (for example InvalidArgument from a bad cgroup parent)
    /// while adding what crius was doing.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { kind: self.kind, message: format!("{what}: {}", self.message), source: self.source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
