//! CRI image messages <-> domain types.

use crius_core::image::{FsUsage, ImageRecord, ImageUser, ImageView, RegistryAuth};
use crius_core::{Error, Result};
use k8s_cri::v1 as cri;

/// The image a request names; an empty or missing spec is InvalidArgument.
pub fn image_name(spec: Option<&cri::ImageSpec>, rpc: &str) -> Result<String> {
    match spec.map(|s| s.image.trim()) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(Error::invalid(format!("{rpc}: image.image is required (an image name, digest or id)"))),
    }
}

pub fn auth(a: Option<&cri::AuthConfig>) -> RegistryAuth {
    let Some(a) = a else { return RegistryAuth::default() };
    RegistryAuth {
        username: a.username.clone(),
        password: a.password.clone(),
        auth: a.auth.clone(),
        identity_token: a.identity_token.clone(),
        registry_token: a.registry_token.clone(),
        server_address: a.server_address.clone(),
    }
}

pub fn image(record: &ImageRecord) -> cri::Image {
    from_view(&ImageView::of(record.clone()))
}

/// CRI's Image: the uid when USER is numeric, the username when it is a name (never both).
pub fn from_view(view: &ImageView) -> cri::Image {
    let r = &view.record;
    let (uid, username) = match &view.user {
        ImageUser::None => (None, String::new()),
        ImageUser::Uid(uid) => (Some(cri::Int64Value { value: *uid }), String::new()),
        ImageUser::Name(name) => (None, name.clone()),
    };
    cri::Image {
        id: r.id.to_string(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
        uid,
        username,
        spec: Some(cri::ImageSpec { image: r.id.to_string(), ..Default::default() }),
        pinned: r.pinned,
    }
}

pub fn fs_info(u: &FsUsage) -> cri::ImageFsInfoResponse {
    let usage = |d: &crius_core::image::DirUsage| cri::FilesystemUsage {
        timestamp: u.timestamp_nanos,
        fs_id: Some(cri::FilesystemIdentifier { mountpoint: d.path.clone() }),
        used_bytes: Some(cri::UInt64Value { value: d.used_bytes }),
        inodes_used: Some(cri::UInt64Value { value: d.inodes_used }),
    };
    cri::ImageFsInfoResponse {
        image_filesystems: vec![usage(&u.images)],
        container_filesystems: vec![usage(&u.containers)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_core::image::{Digest, ImageConfigInfo};

    fn record(user: &str) -> ImageRecord {
        ImageRecord {
            id: Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            repo_tags: vec!["x/y:1".into()],
            repo_digests: vec![],
            manifest_digest: Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap(),
            size: 42,
            pinned: false,
            config: ImageConfigInfo { user: user.into(), ..Default::default() },
            layers: vec![],
        }
    }

    #[test]
    fn user_is_a_uid_or_a_name() {
        let i = image(&record("1000:1000"));
        assert_eq!(i.uid.map(|u| u.value), Some(1000));
        assert!(i.username.is_empty());
        let i = image(&record("app"));
        assert!(i.uid.is_none());
        assert_eq!(i.username, "app");
        let i = image(&record(""));
        assert!(i.uid.is_none() && i.username.is_empty());
        assert_eq!(i.size, 42);
    }

    #[test]
    fn missing_image_spec_is_invalid() {
        assert!(image_name(None, "PullImage").is_err());
        let empty = cri::ImageSpec::default();
        assert!(image_name(Some(&empty), "PullImage").is_err());
        let spec = cri::ImageSpec { image: "busybox".into(), ..Default::default() };
        assert_eq!(image_name(Some(&spec), "PullImage").unwrap(), "busybox");
    }

    #[test]
    fn auth_config_maps_every_field() {
        let a = cri::AuthConfig {
            username: "u".into(),
            identity_token: "i".into(),
            registry_token: "r".into(),
            ..Default::default()
        };
        let d = auth(Some(&a));
        assert_eq!((d.username.as_str(), d.identity_token.as_str(), d.registry_token.as_str()), ("u", "i", "r"));
        assert!(auth(None).is_empty());
    }
}
