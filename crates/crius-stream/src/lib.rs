//! crius's streaming server: the HTTP endpoint the CRI Exec, Attach and PortForward calls hand
//! out single-use URLs to, speaking what the kubelet and crictl speak on it — SPDY/3.1
//! ([`spdy`]) and WebSocket ([`ws`]) upgrades carrying the remotecommand protocols
//! (channel.k8s.io v1 to v5) and port forwarding (portforward.k8s.io, and its WebSocket form).
//!
//! The runtime side is behind three traits ([`backend`]): [`ExecBackend`], [`AttachBackend`]
//! and [`PortForwardBackend`]. [`runc_exec`] implements exec with `runc exec` (a pty for tty
//! sessions) and [`netns`] port forwarding into a pod's network namespace.

pub mod backend;
pub mod error;
pub mod protocol;
pub mod request;
pub mod spdy;
mod sync;
pub mod token;
pub mod ws;

pub use backend::{AttachBackend, ExecBackend, PortForwardBackend, SessionIo, TerminalSize};
pub use error::{BackendError, RequestError, ServerError};
pub use request::{AttachRequest, ExecRequest, PortForwardRequest};
pub mod http;
pub mod io;
pub mod portforward;
pub mod remotecommand;
pub mod server;
pub mod status;
mod tls;

pub use server::{Backends, ServerConfig, StreamServer, TlsFiles};
#[cfg(feature = "client")]
pub mod client;
pub mod netns;
pub mod pty;
pub mod runc_exec;
