//! ListPodSandbox: served from memory (the kubelet calls it every second).

use std::collections::BTreeMap;

use super::SandboxService;
use super::status::PodView;
use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct PodFilter {
    /// An id or a unique prefix of one.
    pub id: Option<String>,
    pub ready: Option<bool>,
    /// Every pair must match the pod's labels.
    pub labels: BTreeMap<String, String>,
}

impl SandboxService {
    pub fn list(&self, filter: &PodFilter) -> Result<Vec<PodView>> {
        let candidates = match &filter.id {
            Some(id) => match self.pods.find(id) {
                Ok(found) => found.into_iter().collect(),
                // An ambiguous prefix matches nothing in a List, like containerd.
                Err(_) => Vec::new(),
            },
            None => self.pods.all(),
        };
        Ok(candidates
            .iter()
            .filter(|e| e.read(|r| filter.labels.iter().all(|(k, v)| r.config.labels.get(k) == Some(v))))
            .map(|e| PodView::of(e))
            .filter(|v| filter.ready.is_none_or(|ready| v.ready == ready))
            .collect())
    }
}
