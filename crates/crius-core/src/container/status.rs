//! ContainerStatus: answered from memory.

use serde_json::json;

use super::ContainerService;
use super::model::{ContainerRecord, ContainerState};
use crate::error::Result;

/// What Status and List report of one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub record: ContainerRecord,
}

impl ContainerView {
    pub fn state(&self) -> ContainerState {
        self.record.state
    }

    /// CRI's reason for an exited container.
    pub fn reason(&self) -> &'static str {
        match &self.record.exit {
            Some(exit) if exit.oom_killed => "OOMKilled",
            Some(exit) if exit.exit_code == 0 => "Completed",
            Some(_) => "Error",
            None => "",
        }
    }

    /// Verbose info (JSON): what an operator needs to inspect the container by hand.
    pub fn verbose_info(&self) -> String {
        let r = &self.record;
        json!({
            "id": r.id,
            "sandboxID": r.pod_id,
            "pid": r.process.map(|p| p.pid),
            "runtime": r.runtime,
            "bundle": r.bundle,
            "imageId": r.image_id,
            "user": r.user,
            "exit": r.exit,
            "config": r.config,
            "timeline": r.timeline,
        })
        .to_string()
    }
}

impl ContainerService {
    pub fn status(&self, id: &str) -> Result<ContainerView> {
        Ok(ContainerView { record: self.find(id)?.snapshot() })
    }
}
