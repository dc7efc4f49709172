//! crius's own metrics in the Prometheus (OpenMetrics text) format: per-RPC counts, errors by
//! gRPC code and latency (a tower layer around the tonic services), image pulls, pods and
//! containers by state, CNI and hostport latency, and the per-step start timeline of pods and
//! containers (decorators around the domain's ports, so the domain itself stays unaware).
//! Served by a small HTTP/1 endpoint, off unless an address is configured.

mod config;
mod endpoint;
mod error;
mod grpc;
pub mod instrument;
mod registry;

pub use config::MetricsConfig;
pub use endpoint::{CONTENT_TYPE, serve};
pub use error::MetricsError;
pub use grpc::{GrpcMetrics, GrpcMetricsLayer, code_name};
pub use registry::{Metrics, ObjectCounts};
