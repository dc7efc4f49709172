//! StopPodSandbox: processes, namespaces, cgroup and /dev/shm go; the record stays (Stopped).

use super::SandboxService;
use super::model::{PodRecord, PodState};
use crate::error::Result;

/// The step hook's name for the moment between closing a pod's host ports and its CNI DEL
/// (crash tests kill the daemon there).
pub const TEARDOWN_NETWORK_STEP: &str = "teardown_network";

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
        if !record.stopping {
            entry.update_persisted(|r| self.ports.pod_state.save(r), |r| r.stopping = true)?;
        }
        if let Some(containers) = self.pod_containers() {
            containers.stop_pod_containers(&record.id)?;
        }
        self.finish_stop(&entry, &record)?;
        tracing::info!(pod_id = %record.id, "pod sandbox stopped");
        Ok(())
    }

    /// Releases what the pod still holds and records it Stopped, so a stop that ran before a
    /// reboot or a restart is not redone.
    pub(crate) fn finish_stop(&self, entry: &crate::store::PodEntry, record: &PodRecord) -> Result<()> {
        self.release_runtime_resources(record)?;
        // Its init is gone now, whether or not recording that below works: STOPPED goes out
        // (unless the exit watch was first).
        self.mark_stopped(entry);
        entry.update_persisted(
            |r| self.ports.pod_state.save(r),
            |r| {
                r.state = PodState::Stopped;
                r.stopping = false;
            },
        )?;
        Ok(())
    }

    /// The one teardown of a pod's running resources, shared by Stop, failed runs and recovery.
    pub(crate) fn release_runtime_resources(&self, record: &PodRecord) -> Result<()> {
        let id = &record.id;
        // Host ports, then CNI DEL, then the netns (with the monitor): each step idempotent, so
        // a stop cut by a crash is finished by the next one.
        if !record.config.namespaces.host_network() {
            self.ports
                .host_ports
                .remove(id, &record.config.port_mappings)
                .map_err(|e| e.context(format!("closing the host ports of pod sandbox {id}")))?;
            if let Some(hook) = &self.step_hook {
                hook(TEARDOWN_NETWORK_STEP);
            }
            self.ports
                .network
                .teardown(&super::run::network_request(record))
                .map_err(|e| e.context(format!("tearing down the network of pod sandbox {id}")))?;
        }
        self.ports.monitor.stop(id, &record.resources).map_err(|e| e.context(format!("stopping pod sandbox {id}")))?;
        self.ports.pod_files.unmount_shm(id).map_err(|e| e.context(format!("unmounting /dev/shm of pod sandbox {id}")))
    }
}
