use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics.address {address:?} is not an address such as 127.0.0.1:9090")]
    BadAddress {
        address: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("binding the metrics endpoint on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the metrics")]
    Encode(#[source] std::fmt::Error),
}
