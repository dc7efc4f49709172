//! RemoveContainer: kill if running, then delete it from the runtime, the rootfs, the layers'
//! hold, the exit record and the record.

use super::ContainerService;
use super::model::ContainerRecord;
use crate::error::Result;
use crate::events::ContainerEventKind;

impl ContainerService {
    /// Idempotent: an unknown container is success.
    pub fn remove(&self, id: &str) -> Result<()> {
        let Some(entry) = self.containers.find(id)? else {
            return Ok(());
        };
        let record = entry.snapshot();
        self.stop(&record.id, 0)?;
        let _op = entry.lock_op();
        self.delete_container(&record)?;
        self.containers.remove(&record.id);
        if let Some(pod) = self.sandboxes.pods().find(&record.pod_id)?.filter(|p| p.id() == record.pod_id) {
            self.names.release(&record.name(&pod.read(|p| p.config.metadata.clone())), &record.id);
        } else {
            self.names.release_id(&record.id);
        }
        self.events.emit(&record.id, &record.pod_id, ContainerEventKind::Deleted);
        tracing::info!(container_id = %record.id, "container removed");
        Ok(())
    }

    /// The one teardown of a container's resources, shared by Remove and recovery. Each step is
    /// idempotent; the record goes last so a crash in between is finished later.
    pub(super) fn delete_container(&self, record: &ContainerRecord) -> Result<()> {
        let p = &self.ports;
        let id = &record.id;
        let ctx = |what: &str| format!("removing container {id}: {what}");
        p.oci.delete(&record.runtime, id).map_err(|e| e.context(ctx("deleting it from the runtime")))?;
        p.fs.cleanup(id).map_err(|e| e.context(ctx("removing its rootfs")))?;
        p.images.release_layers(id).map_err(|e| e.context(ctx("releasing its image layers")))?;
        p.exits.remove(id).map_err(|e| e.context(ctx("removing its exit record")))?;
        p.state.delete(id).map_err(|e| e.context(ctx("removing its record")))
    }
}

impl crate::sandbox::PodContainers for ContainerService {
    /// Stops every container of a pod (for StopPodSandbox).
    fn stop_pod_containers(&self, pod_id: &str) -> Result<()> {
        for entry in self.containers.all() {
            let (id, pod) = entry.read(|r| (r.id.clone(), r.pod_id.clone()));
            if pod == pod_id {
                self.stop(&id, 0)?;
            }
        }
        Ok(())
    }

    /// Removes every container of a pod (for RemovePodSandbox).
    fn pod_died(&self, pod_id: &str) {
        let Some(me) = self.me.get().and_then(std::sync::Weak::upgrade) else { return };
        let pod_id = pod_id.to_string();
        // Called from an exit watch on the async runtime: settling exits may wait, so not there.
        let spawned = std::thread::Builder::new().name("crius-pod-died".into()).spawn(move || {
            let live: Vec<_> = me
                .containers
                .all()
                .into_iter()
                .filter(|e| e.read(|r| r.pod_id == pod_id && r.exit.is_none()))
                .collect();
            // Every container is killed first, so their exits are recorded in parallel...
            for entry in &live {
                if let Some(process) = entry.read(|r| r.process) {
                    let _ = me.ports.monitor.signal(&process, 9);
                }
            }
            // ... and a dead monitor records nothing: then nothing is waited for, so the
            // containers are not reported running for seconds after their pod died.
            let monitor = me.sandboxes.pods().find(&pod_id).ok().flatten().and_then(|p| p.read(|r| r.resources.monitor));
            let record_wait = match monitor {
                Some(m) if me.sandboxes.process_alive(&m) => super::exits::RECORD_WAIT,
                _ => std::time::Duration::ZERO,
            };
            for entry in live {
                let message = "the pod's monitor or init died; the container was killed";
                if let Err(e) = me.settle_exit_within(&entry, message, record_wait) {
                    tracing::error!(container_id = %entry.id(), error = %e, "recording the exit of a container whose pod died");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread to settle the containers of a dead pod");
        }
    }

    fn remove_pod_containers(&self, pod_id: &str) -> Result<()> {
        for entry in self.containers.all() {
            let (id, pod) = entry.read(|r| (r.id.clone(), r.pod_id.clone()));
            if pod == pod_id {
                self.remove(&id)?;
            }
        }
        Ok(())
    }
}
