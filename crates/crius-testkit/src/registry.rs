//! [`TestRegistry`]: Debian's distribution registry (`docker-registry`, v2) on 127.0.0.1 with a
//! random free port and its own temp storage, optionally behind htpasswd auth, killed and
//! removed when dropped. Images are pushed with a small client of the registry HTTP API
//! (monolithic upload: POST, then PUT with the digest; then PUT of the manifest).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::error::{Error, Result};
use crate::image_builder::{Blob, BuiltImage, BuiltIndex};

/// Debian's package `docker-registry`.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry. Dropping it kills the process and removes its storage.
pub struct TestRegistry {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    port: u16,
    log_path: PathBuf,
    storage: PathBuf,
    credentials: Option<(String, String)>,
    http: reqwest::Client,
}

impl TestRegistry {
    /// An open registry.
    pub async fn start() -> Result<TestRegistry> {
        Self::start_inner(None).await
    }

    /// A registry that wants HTTP Basic credentials (htpasswd, bcrypt).
    pub async fn start_with_auth(user: &str, password: &str) -> Result<TestRegistry> {
        Self::start_inner(Some((user.to_string(), password.to_string()))).await
    }

    async fn start_inner(credentials: Option<(String, String)>) -> Result<TestRegistry> {
        if !Path::new(REGISTRY_BIN).exists() {
            return Err(Error::msg(format!(
                "{REGISTRY_BIN} is missing: install Debian's registry (apt-get install -y docker-registry)"
            )));
        }
        let dir = tempfile::Builder::new().prefix("crius-registry-").tempdir()?;
        let storage = dir.path().join("data");
        fs::create_dir(&storage)?;
        let log_path = dir.path().join("registry.log");
        // A port can be taken between probing it and the registry binding it: try a few.
        let mut last_err = Error::msg("no attempt");
        for _ in 0..5 {
            let port = free_port()?;
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yaml(&storage, port, dir.path(), credentials.as_ref())?)?;
            let log = fs::File::create(&log_path)?;
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| Error::context(format!("starting {REGISTRY_BIN}"), e))?;
            // The workspace's reqwest brings no TLS crypto provider of its own (crius uses ring).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut reg = TestRegistry {
                child: Some(child),
                dir: None,
                port,
                log_path: log_path.clone(),
                storage: storage.clone(),
                credentials: credentials.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .map_err(|e| Error::context("http client", e))?,
            };
            match reg.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => {
                    reg.dir = Some(dir);
                    return Ok(reg);
                }
                Err(e) => {
                    last_err = Error::msg(format!("{e}; log:\n{}", reg.log_tail(20)));
                    reg.kill();
                }
            }
        }
        Err(last_err)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::msg(format!("the registry exited: {status}")));
            }
            match self.http.get(format!("{}/v2/", self.url())).send().await {
                Ok(r) if r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED => return Ok(()),
                _ if Instant::now() > deadline => return Err(Error::msg("the registry did not answer /v2/ in time")),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// "127.0.0.1:PORT", the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// "127.0.0.1:PORT/repo:tag".
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// The registry's storage directory (for tampering with blobs).
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// How many successful GETs of this blob the registry served (from its access log).
    pub fn blob_gets(&self, repo: &str, digest: &str) -> usize {
        let needle = format!("\"GET /v2/{repo}/blobs/{digest} ");
        self.log().lines().filter(|l| l.contains(&needle) && (l.contains("\" 200 ") || l.contains("\" 307 "))).count()
    }

    /// How many GETs of any manifest of `repo` reached the registry.
    pub fn manifest_gets(&self, repo: &str) -> usize {
        let needle = format!("\"GET /v2/{repo}/manifests/");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Overwrites the stored content of `digest` with the same number of different bytes, so
    /// the registry serves a blob that no longer matches its digest.
    pub fn tamper_blob(&self, digest: &str) -> Result<()> {
        let hex = digest.trim_start_matches("sha256:");
        let path = self.storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
        let mut data = fs::read(&path).map_err(|e| Error::context(format!("reading {}", path.display()), e))?;
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        fs::write(&path, data)?;
        Ok(())
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        }
    }

    /// Uploads a blob (monolithic: POST for an upload URL, then PUT with the digest).
    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<()> {
        let head = self.auth(self.http.head(format!("{}/v2/{repo}/blobs/{}", self.url(), blob.digest))).send().await;
        if head.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        let resp = self
            .auth(self.http.post(format!("{}/v2/{repo}/blobs/uploads/", self.url())))
            .send()
            .await
            .map_err(|e| Error::context("starting an upload", e))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Error::msg(format!("starting an upload to {repo}: HTTP {}", resp.status())));
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::msg("the registry gave no upload location"))?
            .to_string();
        let location = if location.starts_with('/') { format!("{}{location}", self.url()) } else { location };
        let sep = if location.contains('?') { '&' } else { '?' };
        let resp = self
            .auth(self.http.put(format!("{location}{sep}digest={}", blob.digest)))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(blob.data.to_vec())
            .send()
            .await
            .map_err(|e| Error::context("uploading a blob", e))?;
        if resp.status() != StatusCode::CREATED {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(Error::msg(format!("uploading blob {} to {repo}: HTTP {status}: {body}", blob.digest)));
        }
        Ok(())
    }

    /// PUTs a manifest or index under `reference` (a tag or its digest).
    pub async fn push_manifest(&self, repo: &str, reference: &str, manifest: &Blob) -> Result<()> {
        let resp = self
            .auth(self.http.put(format!("{}/v2/{repo}/manifests/{reference}", self.url())))
            .header(reqwest::header::CONTENT_TYPE, &manifest.media_type)
            .body(manifest.data.to_vec())
            .send()
            .await
            .map_err(|e| Error::context("putting a manifest", e))?;
        if resp.status() != StatusCode::CREATED {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(Error::msg(format!("putting manifest {repo}:{reference}: HTTP {status}: {body}")));
        }
        Ok(())
    }

    /// Pushes an image's blobs and manifest as `repo:tag`; returns the image reference.
    pub async fn push(&self, repo: &str, tag: &str, image: &BuiltImage) -> Result<String> {
        self.push_image_blobs(repo, image).await?;
        self.push_manifest(repo, tag, &image.manifest).await?;
        Ok(self.reference(repo, tag))
    }

    async fn push_image_blobs(&self, repo: &str, image: &BuiltImage) -> Result<()> {
        for b in &image.layers {
            self.push_blob(repo, b).await?;
        }
        self.push_blob(repo, &image.config).await
    }

    /// Pushes every platform's image (by digest) and the index as `repo:tag`.
    pub async fn push_index(&self, repo: &str, tag: &str, index: &BuiltIndex) -> Result<String> {
        for img in &index.images {
            self.push_image_blobs(repo, img).await?;
            self.push_manifest(repo, &img.manifest.digest, &img.manifest).await?;
        }
        self.push_manifest(repo, tag, &index.index).await?;
        Ok(self.reference(repo, tag))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- registry {} log (tail) ---\n{}", self.host(), self.log_tail(12));
        }
        self.kill();
        // The TempDir removes the storage when it drops.
        self.dir.take();
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn config_yaml(storage: &Path, port: u16, dir: &Path, credentials: Option<&(String, String)>) -> Result<String> {
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if let Some((user, password)) = credentials {
        let hash = bcrypt::hash(password, 4).map_err(|e| Error::context("hashing the test password", e))?;
        let htpasswd = dir.join("htpasswd");
        fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
        yaml.push_str(&format!("auth:\n  htpasswd:\n    realm: crius-test\n    path: {}\n", htpasswd.display()));
    }
    Ok(yaml)
}
