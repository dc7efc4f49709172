//! A fake registry on loopback for what Debian's registry cannot do (issue tokens, hold
//! requests to count them in flight): one HTTP/1.1 request per connection, answered by a
//! handler the test gives.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crius_testkit::image_builder::BuiltImage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

pub struct Reply {
    pub status: &'static str,
    pub content_type: String,
    /// Whole header lines, each ending in "\r\n".
    pub extra_headers: String,
    pub body: Arc<Vec<u8>>,
}

impl Reply {
    pub fn new(status: &'static str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, content_type: content_type.into(), extra_headers: String::new(), body: Arc::new(body.into()) }
    }

    pub fn not_found() -> Reply {
        Reply::new("404 Not Found", "application/json", &b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}"[..])
    }
}

/// An image's manifest (under `tag`) and blobs, by request path: (content type, bytes).
pub fn content(repo: &str, tag: &str, image: &BuiltImage) -> HashMap<String, (String, Arc<Vec<u8>>)> {
    let mut content = HashMap::new();
    content.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        (image.manifest.media_type.clone(), image.manifest.data.clone()),
    );
    for b in image.layers.iter().chain(std::iter::once(&image.config)) {
        content.insert(format!("/v2/{repo}/blobs/{}", b.digest), ("application/octet-stream".into(), b.data.clone()));
    }
    content
}

impl Request {
    /// What `content` has at this path (the API root is there), or a 404.
    pub fn lookup(&self, content: &HashMap<String, (String, Arc<Vec<u8>>)>) -> Reply {
        if self.path == "/v2/" {
            return Reply::new("200 OK", "application/json", &b"{}"[..]);
        }
        match content.get(&self.path) {
            Some((ctype, data)) => Reply { body: data.clone(), ..Reply::new("200 OK", ctype, Vec::new()) },
            None => Reply::not_found(),
        }
    }
}

/// Stops serving when dropped.
pub struct FakeRegistry {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve<H, F>(handler: H) -> FakeRegistry
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = answer(sock, &*handler).await;
            });
        }
    });
    FakeRegistry { port, task }
}

async fn answer<H, F>(mut sock: tokio::net::TcpStream, handler: &H) -> std::io::Result<()>
where
    H: Fn(Request) -> F,
    F: Future<Output = Reply>,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let first: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let (method, target) = (first[0], first.get(1).copied().unwrap_or("/"));
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request { method: method.into(), path: path.into(), query: query.into(), headers, body };
    let reply = handler(request).await;
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.extra_headers
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&reply.body).await?;
    sock.shutdown().await
}
