//! crius's domain: pod sandboxes (and later containers and images) as state machines over ports.
//! No syscalls and no process spawning here: everything outside goes through `ports`.

pub mod container;
pub mod error;
pub mod events;
pub mod ids;
pub mod image;
pub mod ports;
pub mod rollback;
pub mod sandbox;
pub mod spec;
pub mod stats;
pub mod store;

pub use error::{Error, ErrorKind, Result};
