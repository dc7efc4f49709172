//! The OCI distribution protocol, the part a puller needs: endpoints (mirrors, upstream,
//! scheme), authentication (Basic, Bearer tokens with Basic credentials, OAuth2 refresh tokens,
//! given registry tokens), manifests and blobs.

pub mod auth;
pub mod client;
pub mod endpoints;

pub use auth::Credentials;
pub use client::RegistryClient;
pub use endpoints::{Endpoint, endpoints_for};
