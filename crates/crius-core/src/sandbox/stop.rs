//! StopPodSandbox: processes, namespaces, cgroup and /dev/shm go; the record stays (Stopped).

use super::SandboxService;
use super::model::{PodRecord, PodState};
use crate::error::Result;

impl SandboxService {
    /// Idempotent: an unknown or already stopped pod is success, as the CRI requires.
    pub fn stop(&self, id: &str) -> Result<()> {
        let Some(entry) = self.pods.find(id)? else {
            return Ok(());
        };
        let _op = entry.lock_op();
        let record = entry.snapshot();
        if record.state == PodState::Stopped {
            return Ok(());
        }
        if let Some(containers) = self.pod_containers() {
            containers.stop_pod_containers(&record.id)?;
        }
        self.release_runtime_resources(&record)?;
        // Recorded, so a stop that ran before a reboot or a restart is not redone.
        entry.update_persisted(|r| self.ports.pod_state.save(r), |r| r.state = PodState::Stopped)?;
        entry.mark_process_exited();
        tracing::info!(pod_id = %record.id, "pod sandbox stopped");
        Ok(())
    }

    /// The one teardown of a pod's running resources, shared by Stop, failed runs and recovery.
    pub(crate) fn release_runtime_resources(&self, record: &PodRecord) -> Result<()> {
        let id = &record.id;
        self.ports.monitor.stop(id, &record.resources).map_err(|e| e.context(format!("stopping pod sandbox {id}")))?;
        self.ports.pod_files.unmount_shm(id).map_err(|e| e.context(format!("unmounting /dev/shm of pod sandbox {id}")))
    }
}
