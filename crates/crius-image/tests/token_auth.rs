//! Bearer-token registries (Docker Hub, ghcr, quay): a small fake registry on loopback that
//! answers 401 with a Bearer challenge and serves an image only with the token its token
//! endpoint hands out for Basic credentials or an OAuth2 refresh token (CRI's identity_token).
//! Debian's registry cannot issue tokens without a JWT signing set-up, hence the fake.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use common::{Store, is_root};
use crius_core::image::RegistryAuth;
use crius_image::ImageError;
use crius_testkit::image_builder::{BuiltImage, catalog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-3f9a";
const REFRESH: &str = "refresh-77";

struct Fake {
    port: u16,
    token_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(image: &BuiltImage) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut content: HashMap<String, (String, Arc<Vec<u8>>)> = HashMap::new();
    content.insert("/v2/tok/app/manifests/v1".into(), (image.manifest.media_type.clone(), image.manifest.data.clone()));
    for b in image.layers.iter().chain(std::iter::once(&image.config)) {
        content.insert(format!("/v2/tok/app/blobs/{}", b.digest), ("application/octet-stream".into(), b.data.clone()));
    }
    let content = Arc::new(content);
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = token_requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let (content, counter) = (content.clone(), counter.clone());
            tokio::spawn(async move {
                let _ = handle(sock, port, &content, &counter).await;
            });
        }
    });
    Fake { port, token_requests, task }
}

async fn handle(
    mut sock: tokio::net::TcpStream,
    port: u16,
    content: &HashMap<String, (String, Arc<Vec<u8>>)>,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
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
    let challenge = format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake-registry\"");
    let reply = |status: &str, ctype: &str, extra: &str, data: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            data.len()
        )
        .into_bytes();
        r.extend_from_slice(data);
        r
    };
    let out = if path == "/token" {
        counter.fetch_add(1, Ordering::SeqCst);
        let params = if method == "POST" { body.as_str() } else { query };
        let scope_ok =
            params.contains("scope=repository%3Atok%2Fapp%3Apull") && params.contains("service=fake-registry");
        let basic_ok = headers.get("authorization").is_some_and(|a| {
            a == &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:wonderland"))
        });
        let refresh_ok = method == "POST" && params.contains("grant_type=refresh_token") && params.contains(REFRESH);
        if scope_ok && (basic_ok || refresh_ok) {
            let key = if refresh_ok { "access_token" } else { "token" };
            reply("200 OK", "application/json", "", format!("{{\"{key}\":\"{TOKEN}\"}}").as_bytes())
        } else {
            reply("401 Unauthorized", "application/json", "", b"{\"details\":\"bad credentials\"}")
        }
    } else if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        reply("401 Unauthorized", "application/json", &format!("WWW-Authenticate: {challenge}\r\n"), b"{}")
    } else if let Some((ctype, data)) = content.get(path) {
        reply("200 OK", ctype, "", data)
    } else {
        reply("404 Not Found", "application/json", "", b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}")
    };
    sock.write_all(&out).await?;
    sock.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_tokens_from_basic_credentials_refresh_tokens_or_given() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let img = catalog::busybox().build();
    let fake = serve(&img).await;
    let reference = format!("127.0.0.1:{}/tok/app:v1", fake.port);

    let basic = RegistryAuth { username: "alice".into(), password: "wonderland".into(), ..Default::default() };
    assert_eq!(Store::new("").pull_auth(&reference, &basic).await.unwrap().id.as_str(), img.id());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1, "one token for the whole pull");

    let identity = RegistryAuth { identity_token: REFRESH.into(), ..Default::default() };
    assert_eq!(Store::new("").pull_auth(&reference, &identity).await.unwrap().id.as_str(), img.id());

    let before = fake.token_requests.load(Ordering::SeqCst);
    let given = RegistryAuth { registry_token: TOKEN.into(), ..Default::default() };
    assert_eq!(Store::new("").pull_auth(&reference, &given).await.unwrap().id.as_str(), img.id());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), before, "a registry token needs no token request");

    let wrong = RegistryAuth { username: "alice".into(), password: "nope".into(), ..Default::default() };
    let err = Store::new("").pull_auth(&reference, &wrong).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("token service"), "{err}");
    let err = Store::new("").pull_auth(&format!("127.0.0.1:{}/tok/app:missing", fake.port), &basic).await.unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
}
