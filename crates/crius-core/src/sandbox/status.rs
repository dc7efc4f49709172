//! PodSandboxStatus: answered from memory.

use serde_json::json;

use super::SandboxService;
use super::model::{PodRecord, PodState};
use crate::error::{Error, Result};
use crate::store::PodEntry;

/// What Status and List report of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub record: PodRecord,
    pub ready: bool,
}

impl PodView {
    pub(crate) fn of(entry: &PodEntry) -> Self {
        let record = entry.snapshot();
        let ready = record.state == PodState::Ready && !entry.process_exited();
        PodView { record, ready }
    }

    /// Verbose info (JSON): what an operator needs to inspect the pod by hand.
    pub fn verbose_info(&self) -> String {
        let r = &self.record;
        json!({
            "id": r.id,
            "state": r.state,
            "pid": r.resources.init.map(|p| p.pid),
            "monitorPid": r.resources.monitor.map(|p| p.pid),
            "namespaces": r.resources.namespaces,
            "cgroup": r.resources.cgroup,
            "runtimeHandler": r.config.runtime_handler,
            "config": r.config,
            "timeline": r.timeline,
        })
        .to_string()
    }
}

impl SandboxService {
    pub fn status(&self, id: &str) -> Result<PodView> {
        match self.pods.find(id)? {
            Some(entry) => Ok(PodView::of(&entry)),
            None => Err(Error::not_found(format!("pod sandbox {id:?} not found"))),
        }
    }
}
