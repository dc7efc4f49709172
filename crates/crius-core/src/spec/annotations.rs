//! The spec's annotations: the config's, the standard CRI ones containerd sets (monitoring tools
//! and NRI plugins read them), then crius's extras.

use std::collections::{BTreeMap, HashMap};

use crate::container::model::ContainerConfig;
use crate::sandbox::model::PodRecord;

pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const CONTAINER_TYPE_CONTAINER: &str = "container";
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";

/// The standard annotations override a config's annotation of the same key: tools trust them to
/// describe the container.
pub fn annotations(
    config: &ContainerConfig,
    pod: &PodRecord,
    image_name: &str,
    extra: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let md = &pod.config.metadata;
    let mut out: HashMap<String, String> = config.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in [
        (CONTAINER_TYPE, CONTAINER_TYPE_CONTAINER),
        (SANDBOX_ID, pod.id.as_str()),
        (CONTAINER_NAME, config.metadata.name.as_str()),
        (IMAGE_NAME, image_name),
        (SANDBOX_NAME, md.name.as_str()),
        (SANDBOX_NAMESPACE, md.namespace.as_str()),
        (SANDBOX_UID, md.uid.as_str()),
    ] {
        out.insert(k.to_string(), v.to_string());
    }
    out.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}
