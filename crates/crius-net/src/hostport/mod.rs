//! crius's own hostport manager: hostPort -> podIP:containerPort DNAT in its own nftables
//! tables (one per IP family), with each host port held by an open socket while the pod lives.

mod conntrack;
pub mod host;
pub mod manager;
pub mod nft;
pub mod plan;
pub mod render;
pub mod sockets;

pub use manager::HostPortManager;
