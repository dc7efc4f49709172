//! WebSocket (RFC 6455) as the kubelet's streaming server speaks it: the handshake and
//! subprotocol choice ([`handshake`]), framing ([`frame`]), the connection ([`conn`]) and the
//! Kubernetes channel framing on top ([`channel`]).

pub mod channel;
pub mod conn;
pub mod frame;
pub mod handshake;

pub use conn::{WsConfig, WsConnection, WsReceiver, WsRole, WsSender};
