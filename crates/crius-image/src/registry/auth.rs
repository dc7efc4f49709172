//! Registry credentials: from CRI's AuthConfig or crius.toml, and their oci-client form
//! (oci-client answers the challenges and fetches the tokens).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crius_core::image::RegistryAuth as CriAuth;
use oci_client::secrets::RegistryAuth;

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
    pub fn from_auth(a: &CriAuth) -> Credentials {
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

    /// What oci-client is handed. An identity token has no form there: it is exchanged for a
    /// bearer token first (`super::identity`).
    pub fn registry_auth(&self) -> RegistryAuth {
        match self {
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
            Credentials::Token(t) => RegistryAuth::Bearer(t.clone()),
            Credentials::None | Credentials::Identity(_) => RegistryAuth::Anonymous,
        }
    }
}

fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_cri_auth_config() {
        let auth = CriAuth { auth: STANDARD.encode("alice:s3cret:with:colons"), ..Default::default() };
        match Credentials::from_auth(&auth) {
            Credentials::Basic { username, password } => {
                assert_eq!((username.as_str(), password.as_str()), ("alice", "s3cret:with:colons"))
            }
            other => panic!("{other:?}"),
        }
        let auth = CriAuth { registry_token: "tok".into(), username: "u".into(), ..Default::default() };
        assert!(matches!(Credentials::from_auth(&auth), Credentials::Token(_)));
        let auth = CriAuth { identity_token: "refresh".into(), ..Default::default() };
        assert!(matches!(Credentials::from_auth(&auth), Credentials::Identity(_)));
        assert!(Credentials::from_auth(&CriAuth::default()).is_none());
        assert!(Credentials::from_parts("", "", "!!notbase64", "", "").is_none());
        let basic = Credentials::Basic { username: "a".into(), password: "pw".into() };
        assert!(!format!("{basic:?}").contains("pw"), "{basic:?}");
    }

    #[test]
    fn oci_client_forms() {
        let basic = Credentials::Basic { username: "a".into(), password: "b".into() };
        assert_eq!(basic.registry_auth(), RegistryAuth::Basic("a".into(), "b".into()));
        assert_eq!(Credentials::Token("t".into()).registry_auth(), RegistryAuth::Bearer("t".into()));
        assert_eq!(Credentials::Identity("r".into()).registry_auth(), RegistryAuth::Anonymous);
        assert_eq!(Credentials::None.registry_auth(), RegistryAuth::Anonymous);
    }
}
