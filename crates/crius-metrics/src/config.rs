//! `[metrics]` in crius.toml.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::MetricsError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where the Prometheus endpoint listens ("127.0.0.1:9090"); "" (the default) serves none.
    /// It has no authentication: keep it on loopback or a trusted network.
    pub address: String,
    /// How often the containers' writable layers are measured for stats, in seconds (a walk of
    /// each layer's tree, done in the background so stats calls never wait for it).
    pub layer_usage_interval_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { address: String::new(), layer_usage_interval_secs: 10 }
    }
}

impl MetricsConfig {
    /// The endpoint's address; None when it is off.
    pub fn socket_addr(&self) -> Result<Option<SocketAddr>, MetricsError> {
        if self.address.is_empty() {
            return Ok(None);
        }
        self.address
            .parse()
            .map(Some)
            .map_err(|source| MetricsError::BadAddress { address: self.address.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_validated() {
        assert_eq!(MetricsConfig::default().socket_addr().unwrap(), None);
        let on = MetricsConfig { address: "127.0.0.1:9090".into(), ..Default::default() };
        assert_eq!(on.socket_addr().unwrap(), Some("127.0.0.1:9090".parse().unwrap()));
        let bad = MetricsConfig { address: "localhost".into(), ..Default::default() };
        assert!(bad.socket_addr().unwrap_err().to_string().contains("localhost"));
    }
}
