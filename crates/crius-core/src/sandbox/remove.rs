//! RemovePodSandbox: stops the pod if needed, then deletes its files and record.

use std::sync::Arc;

use super::SandboxService;
use super::model::PodRecord;
use super::status::PodView;
use crate::error::Result;
use crate::events::ContainerEventKind;
use crate::store::PodEntry;

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
        if !self.still_stored(&entry) {
            // A concurrent Remove finished first (and sent DELETED).
            return Ok(());
        }
        self.delete_pod_files(&record)?;
        let last = PodView::of(&entry);
        self.pods.remove(&record.id);
        self.names.release(&record.name(), &record.id);
        if let Some(level) = &record.selinux_level {
            self.levels.release(level);
        }
        self.events.emit_pod(last, ContainerEventKind::Deleted);
        tracing::info!(pod_id = %record.id, "pod sandbox removed");
        Ok(())
    }

    fn still_stored(&self, entry: &Arc<PodEntry>) -> bool {
        matches!(self.pods.find(&entry.id()), Ok(Some(found)) if Arc::ptr_eq(&found, entry))
    }

    /// Files first, the record last: a crash in between leaves a record that recovery or the
    /// next Remove finishes.
    pub(crate) fn delete_pod_files(&self, record: &PodRecord) -> Result<()> {
        let id = &record.id;
        self.ports.pod_files.remove(id).map_err(|e| e.context(format!("removing the files of pod sandbox {id}")))?;
        self.ports.pod_state.delete(id).map_err(|e| e.context(format!("removing the record of pod sandbox {id}")))
    }
}
