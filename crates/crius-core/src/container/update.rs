//! UpdateContainerResources: converted and checked as CreateContainer does, applied live
//! through the runtime, then recorded.

use super::ContainerService;
use super::model::ContainerState;
use crate::error::{Error, Result};
use crate::ports::container::Resources;
use crate::spec::resources::{cgroup_resources, oom_score_adj};

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
        // The same conversion, host facts and checks as CreateContainer, all before anything is
        // applied: a refused update changes nothing.
        let host = &self.options.host;
        let context = |e: Error| e.context(format!("updating the resources of container {}", record.id));
        let linux = cgroup_resources(&resources, host).map_err(context)?;
        // Not a cgroup setting (a running process keeps its score): checked and recorded only.
        let oom = oom_score_adj(Some(&resources), host).map_err(context)?;
        let mut applied = resources;
        applied.oom_score_adj = oom.map_or(applied.oom_score_adj, i64::from);
        self.ports.oci.update_resources(&record.runtime, &record.id, &linux)?;
        entry.update_persisted(|r| self.ports.state.save_unflushed(r), |r| r.resources = Some(applied))
    }
}
