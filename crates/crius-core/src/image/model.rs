//! What the domain knows of an image: the index record, the parts of its config that containers
//! need, the credentials of one pull and the store's disk usage.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::reference::Digest;

/// One image in the store. Its id is the digest of its config, as in containerd and Docker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// "sha256:<hex>" of the config blob.
    pub id: Digest,
    /// "registry/repository:tag" names pointing at this image.
    pub repo_tags: Vec<String>,
    /// "registry/repository@sha256:<manifest digest>" names.
    pub repo_digests: Vec<String>,
    /// Digest of the platform manifest this image came from.
    pub manifest_digest: Digest,
    /// Bytes the unpacked layers take on disk.
    pub size: u64,
    /// Kept by image garbage collection (the kubelet skips pinned images).
    #[serde(default)]
    pub pinned: bool,
    pub config: ImageConfigInfo,
    /// Lowest first.
    pub layers: Vec<LayerInfo>,
}

/// The parts of the OCI image config that CRI reports and containers use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfigInfo {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub volumes: Vec<String>,
    pub stop_signal: String,
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub architecture: String,
    pub created: Option<String>,
}

/// One layer of an image, unpacked once under `layers/<chain_id>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Identity of this layer together with every layer under it (what the directory is named by).
    pub chain_id: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the blob as the registry serves it (compressed or not).
    pub digest: Digest,
    /// Bytes of the blob as served.
    pub blob_size: u64,
    /// Bytes the unpacked layer takes on disk.
    pub unpacked_size: u64,
}

/// The user an image runs as, in the form CRI reports: a numeric uid, or a user name to resolve
/// in the container's /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    None,
    Uid(i64),
    Name(String),
}

impl ImageUser {
    /// containerd's rule: drop ":group", then a number is a uid and anything else a name.
    pub fn parse(user: &str) -> ImageUser {
        let user = user.split(':').next().unwrap_or_default();
        if user.is_empty() {
            return ImageUser::None;
        }
        match user.parse::<i64>() {
            Ok(uid) => ImageUser::Uid(uid),
            Err(_) => ImageUser::Name(user.to_string()),
        }
    }
}

/// Credentials for one pull (CRI's AuthConfig). Secret fields never appear in Debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// base64("username:password"), as in Docker's config.json.
    pub auth: String,
    /// An OAuth2 refresh token exchanged for a registry token.
    pub identity_token: String,
    /// A bearer token sent to the registry as is.
    pub registry_token: String,
    pub server_address: String,
}

impl RegistryAuth {
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.auth.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("auth", &set(&self.auth))
            .field("identity_token", &set(&self.identity_token))
            .field("registry_token", &set(&self.registry_token))
            .field("server_address", &self.server_address)
            .finish()
    }
}

/// Bytes and inodes used under one directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirUsage {
    pub path: String,
    pub used_bytes: u64,
    pub inodes_used: u64,
}

/// What ImageFsInfo reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsUsage {
    /// Nanoseconds since the epoch when it was measured.
    pub timestamp_nanos: i64,
    /// The image store (`<root>/images`).
    pub images: DirUsage,
    /// Containers' writable layers (`<root>/containers`).
    pub containers: DirUsage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_user_follows_cri() {
        assert_eq!(ImageUser::parse(""), ImageUser::None);
        assert_eq!(ImageUser::parse("1000"), ImageUser::Uid(1000));
        assert_eq!(ImageUser::parse("1000:1000"), ImageUser::Uid(1000));
        assert_eq!(ImageUser::parse("nobody"), ImageUser::Name("nobody".into()));
        assert_eq!(ImageUser::parse("www-data:www-data"), ImageUser::Name("www-data".into()));
        assert_eq!(ImageUser::parse(":100"), ImageUser::None);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let a = RegistryAuth { username: "u".into(), password: "hunter2".into(), ..Default::default() };
        let s = format!("{a:?}");
        assert!(!s.contains("hunter2") && s.contains("<redacted>"), "{s}");
    }
}
