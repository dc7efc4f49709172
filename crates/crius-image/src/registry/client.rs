//! A registry client for one repository on one endpoint, for the length of one pull: it keeps
//! the Authorization it negotiated, so each request after the first goes straight through.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use crius_core::image::Digest;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::auth::{Challenge, Credentials, TokenResponse, parse_challenge};
use super::endpoints::Endpoint;
use crate::digest::Hasher;
use crate::error::ImageError;

pub struct RegistryClient {
    http: reqwest::Client,
    pub endpoint: Endpoint,
    repository: String,
    /// The reference as the user wrote it, for messages.
    shown: String,
    authorization: Mutex<Option<String>>,
    progress_timeout: Duration,
}

/// A fetched manifest or index.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub digest: Digest,
}

impl RegistryClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: Endpoint,
        repository: &str,
        shown: &str,
        progress_timeout: Duration,
    ) -> Self {
        let authorization = match &endpoint.credentials {
            Credentials::Token(t) => Some(format!("Bearer {t}")),
            _ => None,
        };
        RegistryClient {
            http,
            endpoint,
            repository: repository.to_string(),
            shown: shown.to_string(),
            authorization: Mutex::new(authorization),
            progress_timeout,
        }
    }

    pub fn registry(&self) -> &str {
        &self.endpoint.host
    }

    fn auth_header(&self) -> Option<String> {
        self.authorization.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// GET `/v2/<repo>/<path>`, answering a 401 challenge once.
    async fn get(&self, path: &str, accept: Option<&str>, what: &str) -> Result<reqwest::Response, ImageError> {
        let url = format!("{}/v2/{}/{path}", self.endpoint.base_url(), self.repository);
        let mut answered_challenge = false;
        loop {
            let mut req = self.http.get(&url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(auth) = self.auth_header() {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = self.timed(req.send(), what).await?.map_err(|e| self.unreachable(e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !answered_challenge {
                let challenge =
                    resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(parse_challenge);
                if let Some(challenge) = challenge {
                    self.answer(challenge).await?;
                    answered_challenge = true;
                    continue;
                }
            }
            return self.check(resp, what).await;
        }
    }

    /// Maps a non-success status to an error naming the registry, the reference and the status.
    async fn check(&self, resp: reqwest::Response, what: &str) -> Result<reqwest::Response, ImageError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let registry = self.endpoint.host.clone();
        let reference = self.shown.clone();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ImageError::Unauthorized {
                registry,
                reference,
                status: status.as_u16(),
                hint: if self.endpoint.credentials.is_none() { " (no credentials were given)" } else { "" },
            }),
            StatusCode::NOT_FOUND => Err(ImageError::NotFound {
                registry,
                reference,
                what: if what.starts_with("manifest") { "manifest" } else { "blob" },
            }),
            _ => {
                let body = resp.text().await.unwrap_or_default();
                Err(ImageError::RegistryStatus {
                    registry,
                    reference,
                    what: what.to_string(),
                    status: status.as_u16(),
                    body: body.chars().take(300).collect(),
                })
            }
        }
    }

    /// Works out the Authorization a challenge asks for and keeps it for later requests.
    async fn answer(&self, challenge: Challenge) -> Result<(), ImageError> {
        let unauthorized = |status: u16| ImageError::Unauthorized {
            registry: self.endpoint.host.clone(),
            reference: self.shown.clone(),
            status,
            hint: if self.endpoint.credentials.is_none() { " (no credentials were given)" } else { "" },
        };
        let header = match challenge {
            Challenge::Basic => match self.endpoint.credentials.basic_header() {
                Some(h) => h,
                None => return Err(unauthorized(401)),
            },
            Challenge::Bearer { realm, service, scope } => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                let token = self.fetch_token(&realm, service.as_deref(), &scope).await?;
                format!("Bearer {token}")
            }
        };
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
        Ok(())
    }

    async fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String, ImageError> {
        let mut query = vec![("scope", scope.to_string())];
        if let Some(s) = service {
            query.push(("service", s.to_string()));
        }
        let req = match &self.endpoint.credentials {
            Credentials::Identity(refresh) => {
                // OAuth2 refresh-token grant, as Docker does with an identity token.
                let mut form = query.clone();
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", refresh.clone()));
                form.push(("client_id", "crius".into()));
                self.http.post(realm).form(&form)
            }
            creds => {
                let req = self.http.get(realm).query(&query);
                match creds.basic_header() {
                    Some(h) => req.header(AUTHORIZATION, h),
                    None => req,
                }
            }
        };
        let resp = self.timed(req.send(), "token").await?.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if !status.is_success() {
            let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(ImageError::Unauthorized {
                    registry: self.endpoint.host.clone(),
                    reference: self.shown.clone(),
                    status: status.as_u16(),
                    hint: " (refused by the token service)",
                });
            }
            return Err(ImageError::TokenRefused {
                realm: realm.into(),
                reference: self.shown.clone(),
                status: status.as_u16(),
                body,
            });
        }
        let token: TokenResponse = resp.json().await.map_err(|e| ImageError::TokenRefused {
            realm: realm.into(),
            reference: self.shown.clone(),
            status: status.as_u16(),
            body: format!("not a token response: {e}"),
        })?;
        token.into_token().ok_or_else(|| ImageError::TokenRefused {
            realm: realm.into(),
            reference: self.shown.clone(),
            status: status.as_u16(),
            body: "the answer has no token".into(),
        })
    }

    /// A manifest or index by tag or digest, read whole (bounded) and hashed.
    pub async fn manifest(&self, reference: &str, limit: u64) -> Result<Fetched, ImageError> {
        let what = format!("manifest {reference}");
        let resp = self.get(&format!("manifests/{reference}"), Some(crate::manifest::ACCEPT), &what).await?;
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = self.read_bounded(resp, &what, limit).await?;
        let digest = crate::digest::sha256_of(&bytes);
        Ok(Fetched { bytes, content_type, digest })
    }

    /// A small blob (a config) read whole, verified against its digest and size.
    pub async fn small_blob(&self, digest: &Digest, size: u64, limit: u64) -> Result<Bytes, ImageError> {
        let what = format!("blob {digest}");
        if size > limit {
            return Err(ImageError::TooLarge { what, limit });
        }
        let resp = self.blob(digest).await?;
        let bytes = self.read_bounded(resp, &what, limit).await?;
        let actual = crate::digest::sha256_of(&bytes);
        if &actual != digest {
            return Err(ImageError::DigestMismatch { what, expected: digest.to_string(), actual: actual.to_string() });
        }
        if bytes.len() as u64 != size {
            return Err(ImageError::SizeMismatch { what, expected: size, actual: bytes.len() as u64 });
        }
        Ok(bytes)
    }

    /// A blob's response, to be streamed by the caller.
    pub async fn blob(&self, digest: &Digest) -> Result<reqwest::Response, ImageError> {
        self.get(&format!("blobs/{digest}"), None, &format!("blob {digest}")).await
    }

    async fn read_bounded(&self, resp: reqwest::Response, what: &str, limit: u64) -> Result<Bytes, ImageError> {
        let mut stream = resp.bytes_stream();
        let mut out = Vec::new();
        let mut hasher = Hasher::default();
        while let Some(chunk) = self.timed(stream.next(), what).await? {
            let chunk = chunk.map_err(|e| self.unreachable(e))?;
            hasher.update(&chunk);
            if hasher.bytes() > limit {
                return Err(ImageError::TooLarge { what: what.to_string(), limit });
            }
            out.extend_from_slice(&chunk);
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

    pub fn unreachable(&self, source: reqwest::Error) -> ImageError {
        ImageError::Unreachable { registry: self.endpoint.host.clone(), reference: self.shown.clone(), source }
    }
}
