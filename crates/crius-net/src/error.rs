//! crius-net's errors. Each names what failed (plugin, file, port) so that the message a person
//! reads at the client says what to fix; `port.rs` maps them to the domain's error kinds.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no usable CNI network config in {dirs}{detail}")]
    NoNetworkConfig { dirs: String, detail: String },
    #[error("reading CNI network config {}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("CNI network config {}: {reason}", path.display())]
    BadConfig { path: PathBuf, reason: String },
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("running CNI plugin {}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The plugin's own error (CNI error code and message), as it reported it.
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{details}")]
    Plugin { plugin: String, command: &'static str, code: u32, msg: String, details: String },
    #[error("CNI plugin {plugin} {command} did not finish within {secs}s and was killed")]
    PluginTimeout { plugin: String, command: &'static str, secs: u64 },
    #[error("CNI plugin {plugin} {command} returned an unreadable result: {reason}")]
    BadResult { plugin: String, command: &'static str, reason: String },
    #[error("CNI result cache {}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("CNI result cache {}: {reason}", path.display())]
    BadCache { path: PathBuf, reason: String },
    /// A request the caller can fix: a bad annotation, a missing namespace path, a bad id.
    #[error("{what}: {reason}")]
    InvalidRequest { what: String, reason: String },
    #[error("port mapping {mapping}: {reason}")]
    BadMapping { mapping: String, reason: String },
    #[error("host port {port}/{protocol} on {address} is already in use (held by another pod or process)")]
    PortInUse { port: u16, protocol: &'static str, address: String },
    #[error("holding host port {port}/{protocol} on {address}")]
    HoldSocket {
        port: u16,
        protocol: &'static str,
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("running {program}")]
    Tool {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("nft {action} failed: {stderr}")]
    Nft { action: String, stderr: String },
    #[error("reading nft output: {reason}")]
    NftOutput { reason: String },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
