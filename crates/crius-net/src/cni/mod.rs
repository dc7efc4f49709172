//! CNI: network configs, plugin invocation, results and their cache, and the pod network flow
//! built on them.

pub mod args;
pub mod cache;
pub mod conf;
pub mod exec;
pub mod loader;
pub mod network;
pub mod result;
pub mod version;

pub use network::CniNetwork;
