//! A read-only OCI distribution registry serving one OCI image layout over plain HTTP on
//! loopback: enough for a runtime to pull the bench image (`GET /v2/`, `HEAD|GET
//! /v2/<name>/manifests/<tag|digest>`, `HEAD|GET /v2/<name>/blobs/<digest>`). The repository
//! name is not checked: a tag is looked up by the index entries' ref name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::oci::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};

/// A response: status, content type, digest header and body (the body is not sent for HEAD).
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub digest: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &str) -> Reply {
        Reply { status, content_type: "application/json".into(), digest: None, body: body.as_bytes().to_vec() }
    }

    fn error(status: u16, code: &str, message: &str) -> Reply {
        let body = serde_json::json!({ "errors": [ { "code": code, "message": message } ] }).to_string();
        Reply::json(status, &body)
    }
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Answers one request for `path` (the request target, query ignored) from the layout at `dir`.
pub fn route(dir: &Path, method: &str, target: &str) -> Reply {
    if method != "GET" && method != "HEAD" {
        return Reply::error(405, "UNSUPPORTED", "read-only registry");
    }
    let path = target.split('?').next().unwrap_or(target);
    if path == "/v2" || path == "/v2/" {
        return Reply::json(200, "{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Reply::error(404, "NAME_UNKNOWN", "not a registry path");
    };
    if let Some((_name, reference)) = rest.rsplit_once("/manifests/") {
        return manifest(dir, reference);
    }
    if let Some((_name, digest)) = rest.rsplit_once("/blobs/") {
        if !valid_digest(digest) {
            return Reply::error(400, "DIGEST_INVALID", "only sha256 digests");
        }
        return match std::fs::read(dir.join("blobs/sha256").join(&digest["sha256:".len()..])) {
            Ok(body) => Reply {
                status: 200,
                content_type: "application/octet-stream".into(),
                digest: Some(digest.to_string()),
                body,
            },
            Err(_) => Reply::error(404, "BLOB_UNKNOWN", digest),
        };
    }
    Reply::error(404, "NAME_UNKNOWN", "unknown path")
}

fn manifest(dir: &Path, reference: &str) -> Reply {
    let index: Value = match std::fs::read(dir.join("index.json")).map(|raw| serde_json::from_slice(&raw)) {
        Ok(Ok(v)) => v,
        _ => return Reply::error(500, "UNKNOWN", "layout has no readable index.json"),
    };
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let found = entries.iter().find(|m| {
        if valid_digest(reference) {
            m["digest"] == reference
        } else {
            m["annotations"][ANNOTATION_REF_NAME] == reference
                || m["annotations"][ANNOTATION_CONTAINERD_NAME]
                    .as_str()
                    .is_some_and(|n| n.rsplit_once(':').is_some_and(|(_, tag)| tag == reference && !tag.contains('/')))
        }
    });
    let Some(entry) = found else {
        return Reply::error(404, "MANIFEST_UNKNOWN", reference);
    };
    let digest = entry["digest"].as_str().unwrap_or_default().to_string();
    let media = entry["mediaType"].as_str().unwrap_or(crate::oci::MEDIA_MANIFEST).to_string();
    match std::fs::read(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))) {
        Ok(body) => Reply { status: 200, content_type: media, digest: Some(digest), body },
        Err(_) => Reply::error(404, "MANIFEST_UNKNOWN", &digest),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

/// The response head (and body unless HEAD) as bytes.
pub fn render(reply: &Reply, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    if let Some(d) = &reply.digest {
        out.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&reply.body);
    }
    bytes
}

/// Counts served requests (for the log line at exit).
pub struct Registry {
    dir: PathBuf,
    served: AtomicU64,
}

impl Registry {
    pub fn new(dir: PathBuf) -> Arc<Registry> {
        Arc::new(Registry { dir, served: AtomicU64::new(0) })
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Serves until the listener fails (the caller drops the future to stop).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> anyhow::Result<()> {
        loop {
            let (conn, _) = listener.accept().await.context("accepting")?;
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.handle(conn).await {
                    eprintln!("crius-bench registry: {e:#}");
                }
            });
        }
    }

    async fn handle(&self, mut conn: TcpStream) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            anyhow::ensure!(buf.len() <= 64 * 1024, "request head over 64 KiB");
        }
        let head = String::from_utf8_lossy(&buf);
        let mut words = head.lines().next().unwrap_or_default().split_whitespace();
        let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
        let dir = self.dir.clone();
        let (m, t) = (method.to_string(), target.to_string());
        let reply = tokio::task::spawn_blocking(move || route(&dir, &m, &t)).await?;
        self.served.fetch_add(1, Ordering::Relaxed);
        conn.write_all(&render(&reply, method == "HEAD")).await?;
        conn.shutdown().await.ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{ImageDef, ImageFile, add_to_layout, sha256_digest};

    fn layout() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let def = ImageDef {
            name: "127.0.0.1:5000/crius-bench/bench:1".into(),
            files: vec![ImageFile { path: "pause".into(), data: b"p".to_vec(), mode: 0o755 }],
            layers: vec![],
            dirs: vec![],
            entrypoint: vec!["/pause".into()],
            cmd: vec![],
            env: vec![],
        };
        let digest = add_to_layout(dir.path(), &def).unwrap();
        (dir, digest)
    }

    #[test]
    fn routes_manifests_by_tag_and_digest_and_blobs() {
        let (dir, digest) = layout();
        assert_eq!(route(dir.path(), "GET", "/v2/").status, 200);
        let by_tag = route(dir.path(), "HEAD", "/v2/crius-bench/bench/manifests/1");
        assert_eq!(by_tag.status, 200);
        assert_eq!(by_tag.content_type, crate::oci::MEDIA_MANIFEST);
        assert_eq!(by_tag.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(sha256_digest(&by_tag.body), digest);
        let by_digest = route(dir.path(), "GET", &format!("/v2/crius-bench/bench/manifests/{digest}"));
        assert_eq!(by_digest, by_tag);
        assert_eq!(route(dir.path(), "GET", "/v2/crius-bench/bench/manifests/2").status, 404);

        let manifest: Value = serde_json::from_slice(&by_tag.body).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let blob = route(dir.path(), "GET", &format!("/v2/x/blobs/{layer}?ns=127.0.0.1"));
        assert_eq!(blob.status, 200);
        assert_eq!(sha256_digest(&blob.body), layer);
        assert_eq!(route(dir.path(), "GET", "/v2/x/blobs/sha256:../../etc/passwd").status, 400);
        assert_eq!(route(dir.path(), "GET", &format!("/v2/x/blobs/sha256:{}", "0".repeat(64))).status, 404);
        assert_eq!(route(dir.path(), "PUT", "/v2/").status, 405);
    }

    #[test]
    fn head_has_length_but_no_body() {
        let reply = Reply::json(200, "{}");
        let head = String::from_utf8(render(&reply, true)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("Content-Length: 2\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        assert!(String::from_utf8(render(&reply, false)).unwrap().ends_with("\r\n\r\n{}"));
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let (dir, digest) = layout();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let registry = Registry::new(dir.path().to_path_buf());
        let task = tokio::spawn(registry.clone().serve(listener));
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /v2/a/b/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        conn.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains(&format!("Docker-Content-Digest: {digest}")));
        assert_eq!(registry.served(), 1);
        task.abort();
    }
}
