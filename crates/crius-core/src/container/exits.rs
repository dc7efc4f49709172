//! Applying a container's exit, from the monitor's exit record (or inferred when none exists).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ContainerService;
use super::model::ContainerState;
use crate::error::Result;
use crate::ports::container::ContainerExit;
use crate::sandbox::now_ns;
use crate::store::ContainerEntry;

/// How long to wait for the monitor to write the record of an exit it has just reaped.
pub(super) const RECORD_WAIT: Duration = Duration::from_secs(2);

impl ContainerService {
    /// Records `exit` on the container (once) and tells subscribers.
    pub fn apply_exit(&self, entry: &ContainerEntry, exit: ContainerExit) -> Result<()> {
        let mut changed = false;
        entry.update_persisted(
            |r| self.ports.state.save_unflushed(r),
            |r| {
                if r.exit.is_none() {
                    r.exit = Some(exit);
                    r.state = ContainerState::Exited;
                    changed = true;
                }
            },
        )?;
        if changed {
            let (id, pod_id) = entry.read(|r| (r.id.clone(), r.pod_id.clone()));
            tracing::info!(container_id = %id, "container exited");
            // A start under way sends STOPPED itself, after its STARTED.
            self.emit_stopped(&id, &pod_id);
        }
        Ok(())
    }

    /// After the process is gone: the monitor's record, or an inferred one when the monitor
    /// cannot write it (it died too).
    pub(super) fn settle_exit(&self, entry: &ContainerEntry, inferred_message: &str) -> Result<()> {
        self.settle_exit_within(entry, inferred_message, RECORD_WAIT)
    }

    /// `settle_exit`, waiting at most `wait` for the monitor's record (zero: a monitor known
    /// to be dead writes none).
    pub(super) fn settle_exit_within(
        &self,
        entry: &ContainerEntry,
        inferred_message: &str,
        wait: Duration,
    ) -> Result<()> {
        let id = entry.id();
        let deadline = Instant::now() + wait;
        loop {
            if entry.read(|r| r.exit.is_some()) {
                return Ok(());
            }
            if let Some(exit) = self.ports.exits.read(&id)? {
                return self.apply_exit(entry, exit);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = entry.read(|r| r.process.map(|p| p.pid).unwrap_or_default());
        self.apply_exit(entry, inferred_exit(&id, pid, inferred_message))
    }

    /// Called by the exit-record watcher for every record a monitor writes.
    pub fn on_exit_record(self: &Arc<Self>, exit: ContainerExit) {
        let Ok(Some(entry)) = self.containers.find(&exit.container_id) else { return };
        if entry.id() != exit.container_id {
            return;
        }
        if let Err(e) = self.apply_exit(&entry, exit) {
            tracing::error!(error = %e, "recording a container exit");
        }
    }
}

pub(super) fn inferred_exit(id: &str, pid: i32, message: &str) -> ContainerExit {
    ContainerExit {
        container_id: id.to_string(),
        pid,
        // What the kubelet shows for a container whose exit status is unknown.
        exit_code: 255,
        signal: None,
        finished_at_ns: now_ns(),
        oom_killed: false,
        message: message.to_string(),
    }
}
