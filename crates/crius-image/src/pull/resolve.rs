//! From a reference to one platform manifest: endpoints in order (mirrors, then upstream), an
//! index resolved to this host's platform, every manifest verified against its digest.

use std::sync::Arc;

use bytes::Bytes;
use crius_core::image::{Digest, ImageRef, RegistryAuth};

use crate::error::ImageError;
use crate::manifest::{self, DOCKER_CONFIG, MAX_MANIFEST_BYTES, Manifest, OCI_CONFIG, Parsed};
use crate::platform;
use crate::registry::{RegistryClient, endpoints_for};
use crate::store::Inner;

pub(crate) struct Resolved {
    /// The endpoint that served the manifest, then the ones after it in order: blobs are
    /// content-addressed, so one that fails on the first (a mirror that lacks a layer, stalls
    /// or serves wrong bytes) is fetched from the next.
    pub clients: Vec<RegistryClient>,
    /// What the tag points at (an index, or the manifest itself): the repo digest.
    pub top_digest: Digest,
    pub manifest: Manifest,
    pub manifest_bytes: Bytes,
    pub manifest_digest: Digest,
}

pub(crate) async fn resolve(
    inner: &Arc<Inner>,
    reference: &ImageRef,
    auth: &RegistryAuth,
) -> Result<Resolved, ImageError> {
    let shown = reference.to_string();
    let (endpoints, _upstream) = endpoints_for(&inner.registries, &reference.registry, auth);
    let mut attempts = Vec::new();
    let mut all_not_found = true;
    let client_for = |endpoint| RegistryClient::new(&inner.clients, endpoint, &reference.repository, &shown);
    let mut endpoints = endpoints.into_iter();
    while let Some(endpoint) = endpoints.next() {
        let mirror = endpoint.mirror;
        let host = endpoint.host.clone();
        match resolve_on(client_for(endpoint)?, reference).await {
            Ok(mut r) => {
                if mirror {
                    tracing::info!(image = %shown, mirror = %host, "pulling from mirror");
                }
                for endpoint in endpoints {
                    r.clients.push(client_for(endpoint)?);
                }
                return Ok(r);
            }
            Err(e) if mirror => {
                tracing::warn!(image = %shown, mirror = %host, error = %e, "mirror failed; trying the next endpoint");
                all_not_found &= matches!(e, ImageError::NotFound { .. });
                attempts.push(format!("mirror {host}: {e}"));
            }
            Err(e) => {
                if !attempts.is_empty() {
                    tracing::warn!(image = %shown, mirrors = %attempts.join("; "), "every mirror failed before the upstream did");
                }
                return Err(e);
            }
        }
    }
    Err(ImageError::MirrorsFailed { reference: shown, attempts: attempts.join("; "), all_not_found })
}

async fn resolve_on(client: RegistryClient, reference: &ImageRef) -> Result<Resolved, ImageError> {
    let shown = reference.to_string();
    let bad = |why: String| ImageError::BadManifest { reference: shown.clone(), why };
    let top = client.manifest(&reference.manifest_reference(), MAX_MANIFEST_BYTES).await?;
    if let Some(want) = &reference.digest
        && &top.digest != want
    {
        return Err(ImageError::DigestMismatch {
            what: format!("manifest of {shown} from {}", client.registry()),
            expected: want.to_string(),
            actual: top.digest.to_string(),
        });
    }
    // oci-client does not hand over the content type: the manifest's own mediaType, else its
    // shape, says what it is.
    let (manifest, manifest_bytes, manifest_digest) = match manifest::parse(&top.bytes, None).map_err(bad)? {
        Parsed::Manifest(m) => (m, top.bytes.clone(), top.digest.clone()),
        Parsed::Index(index) => {
            let host = platform::host();
            let entry = platform::select(&index.manifests, &host).ok_or_else(|| ImageError::NoMatchingPlatform {
                reference: shown.clone(),
                platform: platform::name(&host),
                available: platform::describe(&index.manifests),
            })?;
            let digest = super::parse_digest(&entry.digest, &shown)?;
            let fetched = client.manifest(digest.as_str(), MAX_MANIFEST_BYTES).await?;
            if fetched.digest != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("platform manifest of {shown} from {}", client.registry()),
                    expected: digest.to_string(),
                    actual: fetched.digest.to_string(),
                });
            }
            match manifest::parse(&fetched.bytes, Some(&entry.media_type)).map_err(bad)? {
                Parsed::Manifest(m) => (m, fetched.bytes, digest),
                Parsed::Index(_) => return Err(bad("an index inside an index is not supported".into())),
            }
        }
    };
    check_manifest(&manifest, &shown)?;
    Ok(Resolved { clients: vec![client], top_digest: top.digest, manifest, manifest_bytes, manifest_digest })
}

fn check_manifest(m: &Manifest, shown: &str) -> Result<(), ImageError> {
    let mt = m.config.media_type.as_str();
    if !(mt == OCI_CONFIG || mt == DOCKER_CONFIG || mt.is_empty()) {
        return Err(ImageError::BadManifest {
            reference: shown.to_string(),
            why: format!("config media type {mt} is not a container image config (an OCI artifact?)"),
        });
    }
    for l in &m.layers {
        if !manifest::layer_is_supported(&l.media_type) {
            return Err(ImageError::UnsupportedLayer {
                reference: shown.to_string(),
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            });
        }
    }
    Ok(())
}
