//! Manifests, indexes and image configs: the OCI and Docker schema2 forms, parsed into one shape.

use std::collections::BTreeMap;

use crius_core::image::{Digest, ImageConfigInfo};
use serde::{Deserialize, Serialize};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What crius asks registries for, best first.
pub const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Manifests and configs are small; a bigger one is refused. Configs are refused before they
/// are buffered; a registry's manifest once oci-client has read it whole.
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;
pub const MAX_CONFIG_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
pub enum Parsed {
    Index(Index),
    Manifest(Manifest),
}

/// Parses a manifest or an index, by the served content type, else by its own mediaType field,
/// else by its shape (OCI allows both to be absent).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        schema_version: u32,
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let ct = content_type.map(|c| c.split(';').next().unwrap_or_default().trim()).filter(|c| !c.is_empty());
    let media = probe.media_type.as_deref().or(ct).unwrap_or_default();
    if media == DOCKER_SCHEMA1 || probe.schema_version == 1 {
        return Err("Docker schema 1 manifests are not supported (deprecated since 2017): re-push the image".into());
    }
    if probe.schema_version != 2 {
        return Err(format!("schemaVersion {} is not 2", probe.schema_version));
    }
    let is_index = match media {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        _ => probe.manifests.is_some() && probe.layers.is_none(),
    };
    if is_index {
        serde_json::from_slice(bytes).map(Parsed::Index).map_err(|e| format!("bad index: {e}"))
    } else {
        serde_json::from_slice(bytes).map(Parsed::Manifest).map_err(|e| format!("bad manifest: {e}"))
    }
}

/// How a layer blob is compressed, by media type. None: not a layer crius can unpack.
pub fn layer_is_supported(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// The image config file (OCI and Docker agree on these fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(default, rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

impl ConfigFile {
    pub fn parse(bytes: &[u8]) -> Result<ConfigFile, String> {
        let c: ConfigFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if c.rootfs.kind != "layers" {
            return Err(format!("rootfs.type is {:?}, not \"layers\"", c.rootfs.kind));
        }
        Ok(c)
    }

    pub fn diff_ids(&self) -> Result<Vec<Digest>, String> {
        self.rootfs.diff_ids.iter().map(|d| Digest::parse(d).map_err(|e| e.to_string())).collect()
    }

    pub fn info(&self) -> ImageConfigInfo {
        let c = self.config.clone().unwrap_or_default();
        ImageConfigInfo {
            user: c.user.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            volumes: c.volumes.map(|v| v.into_keys().collect()).unwrap_or_default(),
            stop_signal: c.stop_signal.unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            created: self.created.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_both_kinds_by_type_field_or_shape() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D}","size":3}},"layers":[]}}"#
        );
        assert!(matches!(parse(m.as_bytes(), None), Ok(Parsed::Manifest(_))));
        let i = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D}","size":1}}]}}"#);
        assert!(matches!(parse(i.as_bytes(), None), Ok(Parsed::Index(_))));
        assert!(matches!(parse(i.as_bytes(), Some(OCI_INDEX)), Ok(Parsed::Index(_))));
        let s1 = r#"{"schemaVersion":1,"name":"x"}"#;
        assert!(parse(s1.as_bytes(), None).unwrap_err().contains("schema 1"));
        assert!(parse(b"nope", None).is_err());
    }

    #[test]
    fn config_fields_map_to_the_domain() {
        let c = ConfigFile::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"User":"app:app","Env":["A=1"],"Entrypoint":null,
            "Cmd":["sh"],"WorkingDir":"/w","Volumes":{"/data":{}},"StopSignal":"SIGQUIT","Labels":{"k":"v"}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let info = c.info();
        assert_eq!(info.user, "app:app");
        assert_eq!(info.cmd, ["sh"]);
        assert!(info.entrypoint.is_empty());
        assert_eq!(info.volumes, ["/data"]);
        assert_eq!(info.stop_signal, "SIGQUIT");
        assert!(ConfigFile::parse(br#"{"rootfs":{"type":"x","diff_ids":[]}}"#).is_err());
    }
}
