//! A registry client for one repository on one endpoint, for the length of one pull. The
//! protocol and token auth are oci-client's; this keeps what a pull adds: the endpoint's host
//! (a mirror's, for a mirror), one negotiation up front so a refusal says why, the no-progress
//! limit on every request, and errors that name the registry and the reference.

use std::time::Duration;

use bytes::Bytes;
use crius_core::image::Digest;
use futures_util::StreamExt;
use oci_client::client::SizedStream;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use tokio::sync::OnceCell;

use super::auth::Credentials;
use super::clients::Clients;
use super::endpoints::Endpoint;
use crate::error::ImageError;

pub struct RegistryClient {
    oci: oci_client::Client,
    /// For the identity-token exchange, the one request that is not oci-client's.
    pub(super) http: reqwest::Client,
    pub endpoint: Endpoint,
    pub(super) repository: String,
    /// The reference as the user wrote it, for messages.
    pub(super) shown: String,
    progress_timeout: Duration,
    /// What oci-client was given, once it has negotiated (on the first request).
    auth: OnceCell<RegistryAuth>,
}

/// A fetched manifest or index.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub digest: Digest,
}

impl RegistryClient {
    pub fn new(clients: &Clients, endpoint: Endpoint, repository: &str, shown: &str) -> Result<Self, ImageError> {
        Ok(RegistryClient {
            oci: clients.client_for(&endpoint)?,
            http: clients.http.clone(),
            endpoint,
            repository: repository.to_string(),
            shown: shown.to_string(),
            progress_timeout: clients.progress_timeout,
            auth: OnceCell::new(),
        })
    }

    pub fn registry(&self) -> &str {
        &self.endpoint.host
    }

    /// The repository on this endpoint's host (a mirror's, for a mirror), by tag or digest.
    fn reference(&self, tag_or_digest: &str) -> Reference {
        let (host, repo) = (self.endpoint.api_host.clone(), self.repository.clone());
        if tag_or_digest.contains(':') {
            Reference::with_digest(host, repo, tag_or_digest.to_string())
        } else {
            Reference::with_tag(host, repo, tag_or_digest.to_string())
        }
    }

    /// The repository alone, for token and blob requests (they send no tag).
    fn repository(&self) -> Reference {
        self.reference("latest")
    }

    /// Negotiates once (oci-client's challenge and token request, or our identity-token
    /// exchange) so a refusal fails here with its reason: oci-client's later requests would
    /// only see the 401 that follows it.
    async fn authenticated(&self) -> Result<&RegistryAuth, ImageError> {
        self.auth
            .get_or_try_init(|| async {
                let auth = match &self.endpoint.credentials {
                    Credentials::Identity(refresh) => {
                        let token = self.timed(super::identity::exchange(self, refresh), "token").await??;
                        token.map_or(RegistryAuth::Anonymous, RegistryAuth::Bearer)
                    }
                    credentials => credentials.registry_auth(),
                };
                let reference = self.repository();
                let negotiated = self.oci.auth(&reference, &auth, RegistryOperation::Pull);
                self.timed(negotiated, "token").await?.map_err(|e| self.fault(e, "token"))?;
                Ok(auth)
            })
            .await
    }

    /// A manifest or index by tag or digest, read whole and hashed; refused above `limit`.
    pub async fn manifest(&self, tag_or_digest: &str, limit: u64) -> Result<Fetched, ImageError> {
        let what = format!("manifest {tag_or_digest}");
        let auth = self.authenticated().await?;
        let reference = self.reference(tag_or_digest);
        let fetch = self.oci.pull_manifest_raw(&reference, auth, crate::manifest::ACCEPT);
        // oci-client reads the body whole: the limit applies to what it read (the no-progress
        // limit bounds how long that may take).
        let (bytes, _) = self.timed(fetch, &what).await?.map_err(|e| self.fault(e, &what))?;
        if bytes.len() as u64 > limit {
            return Err(ImageError::TooLarge { what, limit });
        }
        let digest = crate::digest::sha256_of(&bytes);
        Ok(Fetched { bytes, digest })
    }

    /// A blob's bytes as they arrive. oci-client verifies them against `digest` as they
    /// stream: a mismatch is the stream's last item (see `stream_fault`).
    pub async fn blob(&self, digest: &Digest) -> Result<SizedStream, ImageError> {
        let what = format!("blob {digest}");
        self.authenticated().await?;
        let reference = self.repository();
        let fetch = self.oci.pull_blob_stream(&reference, digest.as_str());
        self.timed(fetch, &what).await?.map_err(|e| self.fault(e, &what))
    }

    /// A small blob (a config) read whole, verified against its digest and size.
    pub async fn small_blob(&self, digest: &Digest, size: u64, limit: u64) -> Result<Bytes, ImageError> {
        let what = format!("blob {digest}");
        if size > limit {
            return Err(ImageError::TooLarge { what, limit });
        }
        let mut stream = self.blob(digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = self.timed(stream.next(), &what).await? {
            let chunk = chunk.map_err(|e| self.stream_fault(e, &what))?;
            out.extend_from_slice(&chunk);
            if out.len() as u64 > limit {
                return Err(ImageError::TooLarge { what, limit });
            }
        }
        if out.len() as u64 != size {
            return Err(ImageError::SizeMismatch { what, expected: size, actual: out.len() as u64 });
        }
        Ok(Bytes::from(out))
    }

    /// Runs `fut`, failing when it takes longer than the no-progress limit.
    pub async fn timed<T>(&self, fut: impl std::future::Future<Output = T>, what: &str) -> Result<T, ImageError> {
        tokio::time::timeout(self.progress_timeout, fut).await.map_err(|_| self.no_progress(what))
    }

    pub fn no_progress(&self, what: &str) -> ImageError {
        ImageError::NoProgress {
            registry: self.endpoint.host.clone(),
            reference: self.shown.clone(),
            what: what.to_string(),
            seconds: self.progress_timeout.as_secs(),
        }
    }
}
