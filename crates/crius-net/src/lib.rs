//! crius's pod networking adapters: CNI plugin invocation (`cni`), crius's own hostport manager
//! (`hostport`: nftables DNAT plus held host sockets), the default bridge network written when a
//! node has none (`default_network`), and their implementations of crius-core's ports (`port`).

pub mod cni;
pub mod config;
pub mod default_network;
pub mod error;
pub mod hostport;
pub mod port;

pub use cni::CniNetwork;
pub use config::{DefaultNetworkConfig, HostPortManagerKind, IpPreference, NetworkConfig};
pub use error::NetError;
pub use hostport::HostPortManager;
pub use port::NoHostPorts;
