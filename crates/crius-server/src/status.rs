//! The one mapping from domain errors to gRPC status codes.

use crius_core::{Error, ErrorKind};
use tonic::{Code, Status};

pub fn to_status(err: Error) -> Status {
    let code = match err.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    if code == Code::Internal {
        // Logged once here, where it is handled; the client gets the same text.
        tracing::error!(error = %err, "request failed");
    }
    Status::new(code, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_codes() {
        assert_eq!(to_status(Error::not_found("x")).code(), Code::NotFound);
        assert_eq!(to_status(Error::invalid("x")).code(), Code::InvalidArgument);
        assert_eq!(to_status(Error::already_exists("x")).code(), Code::AlreadyExists);
        assert_eq!(to_status(Error::precondition("x")).code(), Code::FailedPrecondition);
        let internal = to_status(Error::internal("mounting /dev/shm", std::io::Error::other("EPERM")));
        assert_eq!(internal.code(), Code::Internal);
        assert_eq!(internal.message(), "mounting /dev/shm: EPERM");
    }
}
