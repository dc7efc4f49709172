//! SPDY/3.1 as moby/spdystream (the kubelet's and kubectl's SPDY) speaks it: framing
//! ([`frame`]), header blocks and their zlib compression with the SPDY/3 dictionary
//! ([`headers`]), flow-control windows ([`flow`]) and the connection itself ([`session`]).
//! No maintained crate implements SPDY, so it is written here, against draft 3.1.

pub mod dictionary;
pub mod flow;
pub mod frame;
pub mod headers;
mod recv;
pub mod session;

pub use flow::FlowControl;
pub use frame::rst;
pub use headers::Headers;
pub use session::{Incoming, IncomingStream, Role, SpdyConfig, SpdySession, SpdyStream};
