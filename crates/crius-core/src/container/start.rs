//! StartContainer.

use super::ContainerService;
use super::events::ContainerEventKind;
use super::model::ContainerState;
use crate::error::{Error, Result};
use crate::ports::container::ContainerExit;
use crate::sandbox::now_ns;

impl ContainerService {
    pub fn start(&self, id: &str) -> Result<()> {
        let entry = self.find(id)?;
        let _op = entry.lock_op();
        let record = entry.snapshot();
        if record.state != ContainerState::Created {
            return Err(Error::precondition(format!(
                "container {} is {:?}: only a created container can be started",
                record.id, record.state
            )));
        }
        let save = |r: &_| self.ports.state.save(r);
        if let Err(err) = self.ports.monitor.start_container(&record.pod_id, &record.id) {
            // As containerd: a container that failed to start is exited, with the reason.
            let message = format!("start failed: {err}");
            let _ = entry.update_persisted(save, |r| {
                r.state = ContainerState::Exited;
                r.exit.get_or_insert(ContainerExit {
                    container_id: r.id.clone(),
                    pid: r.process.map(|p| p.pid).unwrap_or_default(),
                    exit_code: 128,
                    signal: None,
                    finished_at_ns: now_ns(),
                    oom_killed: false,
                    message,
                });
            });
            self.events.emit(&record.id, &record.pod_id, ContainerEventKind::Stopped);
            return Err(err.context(format!("starting container {}", record.id)));
        }
        entry.update_persisted(save, |r| {
            r.started_at_ns = now_ns();
            // The process may already have exited (and been recorded) in between.
            if r.exit.is_none() {
                r.state = ContainerState::Running;
            }
        })?;
        self.events.emit(&record.id, &record.pod_id, ContainerEventKind::Started);
        tracing::info!(container_id = %record.id, "container started");
        Ok(())
    }
}
