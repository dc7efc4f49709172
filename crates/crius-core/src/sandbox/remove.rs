//! RemovePodSandbox: stops the pod if needed, then deletes its files and record.

use super::SandboxService;
use super::model::PodRecord;
use crate::error::Result;

impl SandboxService {
    /// Idempotent: an unknown pod is success.
    pub fn remove(&self, id: &str) -> Result<()> {
        let Some(entry) = self.pods.find(id)? else {
            return Ok(());
        };
        let record = entry.snapshot();
        self.stop(&record.id)?;
        if let Some(containers) = self.pod_containers() {
            containers.remove_pod_containers(&record.id)?;
        }
        let _op = entry.lock_op();
        self.delete_pod_files(&record)?;
        self.pods.remove(&record.id);
        self.names.release(&record.name(), &record.id);
        tracing::info!(pod_id = %record.id, "pod sandbox removed");
        Ok(())
    }

    /// Files first, the record last: a crash in between leaves a record that recovery or the
    /// next Remove finishes.
    pub(crate) fn delete_pod_files(&self, record: &PodRecord) -> Result<()> {
        let id = &record.id;
        self.ports.pod_files.remove(id).map_err(|e| e.context(format!("removing the files of pod sandbox {id}")))?;
        self.ports.pod_state.delete(id).map_err(|e| e.context(format!("removing the record of pod sandbox {id}")))
    }
}
