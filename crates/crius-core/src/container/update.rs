//! UpdateContainerResources: applied live through the runtime, then recorded.

use super::ContainerService;
use super::model::ContainerState;
use crate::error::{Error, Result};
use crate::ports::container::Resources;

impl ContainerService {
    pub fn update_resources(&self, id: &str, resources: Resources) -> Result<()> {
        let entry = self.find(id)?;
        let _op = entry.lock_op();
        let record = entry.snapshot();
        if !matches!(record.state, ContainerState::Created | ContainerState::Running) {
            return Err(Error::precondition(format!(
                "container {} is {:?}: resources can only be updated on a created or running container",
                record.id, record.state
            )));
        }
        let mut applied = resources;
        applied.oom_score_adj = applied.oom_score_adj.max(self.options.host.min_oom_score_adj);
        self.ports.oci.update_resources(&record.runtime, &record.id, &applied)?;
        entry.update_persisted(|r| self.ports.state.save(r), |r| r.resources = Some(applied))
    }
}
