//! Bearer-token registries (Docker Hub, ghcr, quay): a small fake registry on loopback that
//! answers 401 with a Bearer challenge and serves an image only with the token its token
//! endpoint hands out for Basic credentials or an OAuth2 refresh token (CRI's identity_token).
//! Debian's registry cannot issue tokens without a JWT signing set-up, hence the fake.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use common::fake_registry::{self, FakeRegistry, Reply, Request};
use common::{Store, is_root};
use crius_core::image::RegistryAuth;
use crius_image::ImageError;
use crius_testkit::image_builder::{BuiltImage, catalog};

const TOKEN: &str = "tok-3f9a";
const REFRESH: &str = "refresh-77";

struct Fake {
    port: u16,
    token_requests: Arc<AtomicUsize>,
    _server: FakeRegistry,
}

async fn serve(image: &BuiltImage) -> Fake {
    let content = Arc::new(fake_registry::content("tok/app", "v1", image));
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = token_requests.clone();
    let server = fake_registry::serve(move |req| {
        let reply = handle(&req, &content, &counter);
        async move { reply }
    })
    .await;
    Fake { port: server.port, token_requests, _server: server }
}

fn handle(req: &Request, content: &HashMap<String, (String, Arc<Vec<u8>>)>, counter: &AtomicUsize) -> Reply {
    let host = req.headers.get("host").map_or("127.0.0.1", String::as_str);
    let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"fake-registry\"");
    if req.path == "/token" {
        counter.fetch_add(1, Ordering::SeqCst);
        let params = if req.method == "POST" { req.body.as_str() } else { req.query.as_str() };
        let scope_ok =
            params.contains("scope=repository%3Atok%2Fapp%3Apull") && params.contains("service=fake-registry");
        let basic_ok = req.headers.get("authorization").is_some_and(|a| {
            a == &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:wonderland"))
        });
        let refresh_ok =
            req.method == "POST" && params.contains("grant_type=refresh_token") && params.contains(REFRESH);
        if scope_ok && (basic_ok || refresh_ok) {
            let key = if refresh_ok { "access_token" } else { "token" };
            Reply::new("200 OK", "application/json", format!("{{\"{key}\":\"{TOKEN}\"}}"))
        } else {
            Reply::new("401 Unauthorized", "application/json", &b"{\"details\":\"bad credentials\"}"[..])
        }
    } else if req.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        Reply {
            extra_headers: format!("WWW-Authenticate: {challenge}\r\n"),
            ..Reply::new("401 Unauthorized", "application/json", &b"{}"[..])
        }
    } else {
        req.lookup(content)
    }
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
