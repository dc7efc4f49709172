//! The `[registries."host:port"]` and `[image_pull]` tables of crius.toml.
//!
//! ```toml
//! [image_pull]
//! max_concurrent_downloads = 3
//! progress_timeout_secs = 60
//!
//! [registries."docker.io"]
//! mirrors = ["mirror.internal:5000"]   # tried in order, before the upstream
//! upstream = false                      # mirrors only: never contact docker.io itself
//!
//! [registries."mirror.internal:5000"]
//! insecure = true                       # plain HTTP
//! username = "puller"
//! password = "secret"
//! ```
//!
//! Hosts on the loopback network (localhost, 127.0.0.0/8, [::1]) are plain HTTP unless
//! `insecure = false` says otherwise, as in Docker.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::ImageError;

/// One registry host's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Hosts ("host:port") serving the same repositories, tried in order before the upstream.
    pub mirrors: Vec<String>,
    /// Whether the registry itself is tried after the mirrors. `false`: mirrors only; a 404 from
    /// them is NotFound and the upstream host is never contacted (nor looked up in DNS).
    pub upstream: bool,
    /// Plain HTTP instead of HTTPS. Unset: plain HTTP for loopback hosts only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "redacted")]
    pub password: String,
    /// base64("username:password").
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "redacted")]
    pub auth: String,
    /// An OAuth2 refresh token.
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "redacted")]
    pub identity_token: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: Vec::new(),
            upstream: true,
            insecure: None,
            username: String::new(),
            password: String::new(),
            auth: String::new(),
            identity_token: String::new(),
        }
    }
}

/// Secrets are printed by `crius config` and reported in verbose Status: never their value.
fn redacted<S: Serializer>(_value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// Settings per registry host ("docker.io", "127.0.0.1:5000").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Registries(pub BTreeMap<String, RegistryConfig>);

impl Registries {
    pub fn get(&self, host: &str) -> Option<&RegistryConfig> {
        self.0.get(host)
    }

    /// Whether `host` is spoken to over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        match self.get(host).and_then(|c| c.insecure) {
            Some(v) => v,
            None => is_loopback_host(host),
        }
    }

    pub fn validate(&self) -> Result<(), ImageError> {
        for (host, c) in &self.0 {
            let check = |h: &str, what: &str| {
                if h.is_empty() || h.contains('/') || h.contains("://") || h.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(ImageError::Config(format!(
                        "registries.{host:?}: {what} {h:?} must be a host or host:port, without scheme or path"
                    )));
                }
                Ok(())
            };
            check(host, "the registry")?;
            for m in &c.mirrors {
                check(m, "mirror")?;
                if m == host {
                    return Err(ImageError::Config(format!("registries.{host:?}: the registry is its own mirror")));
                }
            }
            if !c.upstream && c.mirrors.is_empty() {
                return Err(ImageError::Config(format!(
                    "registries.{host:?}: upstream = false needs at least one mirror, or nothing can be pulled"
                )));
            }
        }
        Ok(())
    }
}

/// `localhost`, 127.0.0.0/8 or [::1], with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name == "::1" || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// How pulls behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullConfig {
    /// Layers downloaded at once, over all pulls.
    pub max_concurrent_downloads: usize,
    /// A pull that receives no byte for this long fails.
    pub progress_timeout_secs: u64,
    /// Seconds to wait for a TCP (and TLS) connection to a registry.
    pub connect_timeout_secs: u64,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig { max_concurrent_downloads: 3, progress_timeout_secs: 60, connect_timeout_secs: 15 }
    }
}

impl PullConfig {
    pub fn progress_timeout(&self) -> Duration {
        Duration::from_secs(self.progress_timeout_secs)
    }

    pub fn validate(&self) -> Result<(), ImageError> {
        if self.max_concurrent_downloads == 0 || self.max_concurrent_downloads > 64 {
            return Err(ImageError::Config(format!(
                "image_pull.max_concurrent_downloads = {}: must be 1 to 64",
                self.max_concurrent_downloads
            )));
        }
        if self.progress_timeout_secs == 0 || self.connect_timeout_secs == 0 {
            return Err(ImageError::Config("image_pull timeouts must be at least 1 second".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Doc {
        #[serde(default)]
        registries: Registries,
        #[serde(default)]
        image_pull: PullConfig,
    }

    #[test]
    fn parses_the_documented_tables() {
        let doc: Doc = toml::from_str(
            r#"
            [image_pull]
            max_concurrent_downloads = 5
            [registries."docker.io"]
            mirrors = ["127.0.0.1:6000", "mirror.internal:5000"]
            upstream = false
            [registries."mirror.internal:5000"]
            insecure = true
            username = "u"
            password = "p"
            "#,
        )
        .unwrap();
        assert_eq!(doc.image_pull.max_concurrent_downloads, 5);
        assert_eq!(doc.image_pull.progress_timeout_secs, 60);
        let hub = doc.registries.get("docker.io").unwrap();
        assert_eq!(hub.mirrors.len(), 2);
        assert!(!hub.upstream);
        assert!(doc.registries.is_insecure("mirror.internal:5000"));
        assert!(doc.registries.is_insecure("127.0.0.1:6000"), "loopback is plain HTTP by default");
        assert!(!doc.registries.is_insecure("docker.io"));
        doc.registries.validate().unwrap();
        let printed = toml::to_string(&doc).unwrap();
        assert!(printed.contains("<redacted>") && !printed.contains("\"p\""), "{printed}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Doc>("[registries.\"x\"]\nmirrorz = []").is_err());
        let r: Doc = toml::from_str("[registries.\"x.io\"]\nupstream = false").unwrap();
        assert!(r.registries.validate().unwrap_err().to_string().contains("mirror"));
        let r: Doc = toml::from_str("[registries.\"x.io\"]\nmirrors = [\"http://m\"]").unwrap();
        assert!(r.registries.validate().is_err());
        assert!(PullConfig { max_concurrent_downloads: 0, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.9.9.9", "[::1]:5000"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["docker.io", "10.0.0.1:5000", "example.com:80", "[fe80::1]:5000"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
