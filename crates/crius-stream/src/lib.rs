//! crius's streaming server: the HTTP endpoint the CRI Exec, Attach and PortForward calls hand
//! out single-use URLs to, speaking what the kubelet and crictl speak on it — SPDY/3.1
//! ([`spdy`]) and WebSocket ([`ws`]) upgrades carrying the remotecommand protocols
//! (channel.k8s.io v1 to v5) and port forwarding (portforward.k8s.io, and its WebSocket form).
//!
//! The runtime side is behind three traits ([`backend`]): [`ExecBackend`], [`AttachBackend`]
//! and [`PortForwardBackend`]. [`runc_exec`] implements exec with `runc exec` (a pty for tty
//! sessions) and [`netns`] port forwarding into a pod's network namespace.

pub mod error;
pub mod spdy;
mod sync;
