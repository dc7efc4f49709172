//! Registry authentication: credentials from CRI's AuthConfig or crius.toml, the
//! WWW-Authenticate challenge, and the token request a Bearer challenge asks for.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crius_core::image::RegistryAuth;

/// What crius can present to a registry.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token, exchanged at the token realm (Docker's identity token).
    Identity(String),
    /// A bearer token used as is.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Identity(_) => f.write_str("Identity(<redacted>)"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

impl Credentials {
    pub fn from_auth(a: &RegistryAuth) -> Credentials {
        Self::from_parts(&a.username, &a.password, &a.auth, &a.identity_token, &a.registry_token)
    }

    /// The most specific form given wins: a registry token, an identity token, a username and
    /// password, then the base64 `auth` pair.
    pub fn from_parts(
        username: &str,
        password: &str,
        auth: &str,
        identity_token: &str,
        registry_token: &str,
    ) -> Credentials {
        if !registry_token.is_empty() {
            return Credentials::Token(registry_token.to_string());
        }
        if !identity_token.is_empty() {
            return Credentials::Identity(identity_token.to_string());
        }
        if !username.is_empty() {
            return Credentials::Basic { username: username.to_string(), password: password.to_string() };
        }
        if !auth.is_empty() {
            if let Some((u, p)) = decode_auth(auth) {
                return Credentials::Basic { username: u, password: p };
            }
            tracing::warn!("ignoring an auth value that is not base64(\"user:password\")");
        }
        Credentials::None
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Credentials::None)
    }

    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => {
                Some(format!("Basic {}", STANDARD.encode(format!("{username}:{password}"))))
            }
            _ => None,
        }
    }
}

fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// A parsed WWW-Authenticate header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let realm = params.get("realm")?.clone();
    Some(Challenge::Bearer { realm, service: params.get("service").cloned(), scope: params.get("scope").cloned() })
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            // A quoted string, with backslash escapes.
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token endpoint's answer (Docker's `token`, OAuth2's `access_token`).
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        if !self.token.is_empty() {
            Some(self.token)
        } else if !self.access_token.is_empty() {
            Some(self.access_token)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }
        );
        let c = parse_challenge(r#"bearer realm="http://127.0.0.1:1/t", error="invalid_token""#).unwrap();
        assert!(matches!(c, Challenge::Bearer { ref realm, service: None, .. } if realm == "http://127.0.0.1:1/t"));
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None, "a realm is required");
    }

    #[test]
    fn credentials_from_cri_auth_config() {
        let auth = RegistryAuth { auth: STANDARD.encode("alice:s3cret:with:colons"), ..Default::default() };
        match Credentials::from_auth(&auth) {
            Credentials::Basic { username, password } => {
                assert_eq!((username.as_str(), password.as_str()), ("alice", "s3cret:with:colons"))
            }
            other => panic!("{other:?}"),
        }
        let auth = RegistryAuth { registry_token: "tok".into(), username: "u".into(), ..Default::default() };
        assert!(matches!(Credentials::from_auth(&auth), Credentials::Token(_)));
        let auth = RegistryAuth { identity_token: "refresh".into(), ..Default::default() };
        assert!(matches!(Credentials::from_auth(&auth), Credentials::Identity(_)));
        assert!(Credentials::from_auth(&RegistryAuth::default()).is_none());
        assert!(Credentials::from_parts("", "", "!!notbase64", "", "").is_none());
        let basic = Credentials::Basic { username: "a".into(), password: "b".into() };
        assert_eq!(basic.basic_header().unwrap(), "Basic YTpi");
        assert!(!format!("{basic:?}").contains('b') || format!("{basic:?}").contains("redacted"));
    }
}
