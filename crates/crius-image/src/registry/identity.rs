//! Docker's identity token (CRI's `identity_token`): an OAuth2 refresh token, exchanged at the
//! registry's token realm for an access token that oci-client then uses as a bearer token.
//! Ours because oci-client asks token realms only with GET and Basic credentials; it has no
//! refresh-token grant.

use http_auth::ChallengeParser;
use oci_client::token_cache::RegistryToken;
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;

use super::client::RegistryClient;
use super::fault::TOKEN_REFUSED;
use crate::error::ImageError;

/// Where a Bearer challenge sends the client for a token.
#[derive(Debug, PartialEq, Eq)]
struct Realm {
    realm: String,
    service: Option<String>,
}

/// The access token for `refresh`, or None when the registry asks for no bearer token (an
/// identity token has no other use).
pub(super) async fn exchange(client: &RegistryClient, refresh: &str) -> Result<Option<String>, ImageError> {
    let (http, repository) = (&client.http, &client.repository);
    let ping =
        http.get(format!("{}/v2/", client.endpoint.base_url())).send().await.map_err(|e| client.unreachable(e))?;
    let challenge = ping.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(bearer_realm);
    let Some(Realm { realm, service }) = challenge else { return Ok(None) };
    let mut form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh.to_string()),
        ("client_id", "crius".to_string()),
        ("scope", format!("repository:{repository}:pull")),
    ];
    if let Some(s) = service {
        form.push(("service", s));
    }
    let resp = http.post(&realm).form(&form).send().await.map_err(|e| client.unreachable(e))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| client.unreachable(e))?;
    let refused = |body: String| ImageError::TokenRefused {
        realm: realm.clone(),
        reference: client.shown.clone(),
        status: status.as_u16(),
        body,
    };
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(client.unauthorized(status.as_u16(), TOKEN_REFUSED));
    }
    if !status.is_success() {
        return Err(refused(body.chars().take(300).collect()));
    }
    let token: RegistryToken =
        serde_json::from_str(&body).map_err(|e| refused(format!("not a token response: {e}")))?;
    Ok(Some(token.token().to_string()))
}

/// The realm and service of a `WWW-Authenticate` header's Bearer challenge, if it has one.
fn bearer_realm(header: &str) -> Option<Realm> {
    let bearer = ChallengeParser::new(header).flatten().find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let param =
        |name: &str| bearer.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped());
    Some(Realm { realm: param("realm")?, service: param("service") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let r = bearer_realm(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            r,
            Some(Realm { realm: "https://auth.example/token".into(), service: Some("registry.example".into()) })
        );
        let r = bearer_realm(r#"bearer realm="http://127.0.0.1:1/t", error="invalid_token""#).unwrap();
        assert_eq!((r.realm.as_str(), r.service), ("http://127.0.0.1:1/t", None));
        assert_eq!(bearer_realm(r#"Basic realm="Registry Realm""#), None);
        assert_eq!(bearer_realm("Negotiate"), None);
        assert_eq!(bearer_realm("Bearer service=\"x\""), None, "a realm is required");
    }
}
