//! How pulls talk to registries: timeouts, and the oci-client clients they share, one per
//! endpoint and credentials. Shared so a pull reuses the connections (and TLS sessions) of the
//! pulls before it, as one HTTP client did before oci-client; per credentials because an
//! oci-client client keeps the first credentials it is given for a registry, and its tokens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};

use super::auth::Credentials;
use super::endpoints::Endpoint;
use crate::config::PullConfig;
use crate::error::ImageError;

const USER_AGENT: &str = concat!("crius/", env!("CARGO_PKG_VERSION"));

/// Distinct endpoint-and-credentials pairs kept; past it the cache starts over.
const MAX_CLIENTS: usize = 64;

pub struct Clients {
    /// For the identity-token exchange, the one request that is not oci-client's.
    pub(super) http: reqwest::Client,
    connect_timeout: Duration,
    pub(super) progress_timeout: Duration,
    shared: Mutex<HashMap<String, oci_client::Client>>,
}

impl Clients {
    pub fn new(pull: &PullConfig) -> Result<Clients, ImageError> {
        // reqwest is built without a TLS crypto provider of its own: crius's TLS uses ring.
        // Installing fails only when one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connect_timeout = Duration::from_secs(pull.connect_timeout_secs);
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ImageError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Clients { http, connect_timeout, progress_timeout: pull.progress_timeout(), shared: Mutex::default() })
    }

    /// The oci-client client for `endpoint` with its credentials.
    pub(super) fn client_for(&self, endpoint: &Endpoint) -> Result<oci_client::Client, ImageError> {
        // An identity token becomes a new access token on each pull: no client to share.
        let Some(key) = cache_key(endpoint) else { return self.build(endpoint) };
        if let Some(client) = self.cache().get(&key) {
            return Ok(client.clone());
        }
        // Built outside the lock (it reads the system's CA certificates).
        let client = self.build(endpoint)?;
        let mut cache = self.cache();
        if cache.len() >= MAX_CLIENTS {
            cache.clear();
        }
        Ok(cache.entry(key).or_insert(client).clone())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, oci_client::Client>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn build(&self, endpoint: &Endpoint) -> Result<oci_client::Client, ImageError> {
        let config = ClientConfig {
            protocol: if endpoint.scheme == "http" { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(self.connect_timeout),
            user_agent: USER_AGENT,
            // Indexes are resolved by crate::platform.
            platform_resolver: None,
            ..Default::default()
        };
        oci_client::Client::try_from(config)
            .map_err(|e| ImageError::Config(format!("cannot build the HTTP client for {}: {e}", endpoint.host)))
    }
}

/// The endpoint and a hash of its credentials (secrets stay out of the key).
fn cache_key(endpoint: &Endpoint) -> Option<String> {
    let secret = match &endpoint.credentials {
        Credentials::None => String::new(),
        Credentials::Basic { username, password } => format!("basic\0{username}\0{password}"),
        Credentials::Token(token) => format!("token\0{token}"),
        Credentials::Identity(_) => return None,
    };
    Some(format!("{}://{} {}", endpoint.scheme, endpoint.api_host, crate::digest::sha256_of(secret.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(credentials: Credentials) -> Endpoint {
        Endpoint { host: "r:5000".into(), api_host: "r:5000".into(), scheme: "http", mirror: false, credentials }
    }

    #[test]
    fn clients_are_shared_by_endpoint_and_credentials_only() {
        let basic = |p: &str| Credentials::Basic { username: "u".into(), password: p.into() };
        let key = |c| cache_key(&endpoint(c));
        assert_eq!(key(basic("a")), key(basic("a")));
        assert_ne!(key(basic("a")), key(basic("b")));
        assert_ne!(key(Credentials::None), key(Credentials::Token("t".into())));
        assert_eq!(key(Credentials::Identity("r".into())), None);
        assert!(!key(basic("s3cret")).unwrap().contains("s3cret"));
        let https = Endpoint { scheme: "https", ..endpoint(Credentials::None) };
        assert_ne!(cache_key(&https), key(Credentials::None));
    }
}
