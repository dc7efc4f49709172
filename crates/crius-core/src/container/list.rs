//! ListContainers: served from memory (the kubelet calls it every second).

use std::collections::BTreeMap;

use super::ContainerService;
use super::model::ContainerState;
use super::status::ContainerView;

#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    /// An id or a unique prefix of one.
    pub id: Option<String>,
    pub state: Option<ContainerState>,
    /// A pod id or a unique prefix of one.
    pub pod_id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerService {
    pub fn list(&self, filter: &ContainerFilter) -> Vec<ContainerView> {
        let candidates = match &filter.id {
            // An ambiguous or unknown id matches nothing in a List, like containerd.
            Some(id) => self.containers.find(id).ok().flatten().into_iter().collect(),
            None => self.containers.all(),
        };
        let pod_id = match &filter.pod_id {
            Some(prefix) => match self.sandboxes.pods().find(prefix) {
                Ok(Some(pod)) => Some(pod.id()),
                _ => return Vec::new(),
            },
            None => None,
        };
        candidates
            .iter()
            .filter(|e| {
                e.read(|r| {
                    r.state != ContainerState::Creating
                        && filter.state.is_none_or(|s| s == r.state)
                        && pod_id.as_ref().is_none_or(|p| *p == r.pod_id)
                        && filter.labels.iter().all(|(k, v)| r.config.labels.get(k) == Some(v))
                })
            })
            .map(|e| ContainerView { record: e.snapshot() })
            .collect()
    }
}
