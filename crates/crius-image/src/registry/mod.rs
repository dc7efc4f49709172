//! The OCI distribution protocol, the part a puller needs, on oci-client: endpoints (mirrors,
//! upstream, scheme) and credentials are ours; challenges, tokens, manifests and blob streams
//! are oci-client's, except the identity-token exchange it cannot do.

pub mod auth;
pub mod client;
pub mod clients;
pub mod endpoints;
mod fault;
mod identity;

pub use auth::Credentials;
pub use client::RegistryClient;
pub use clients::Clients;
pub use endpoints::{Endpoint, endpoints_for};
