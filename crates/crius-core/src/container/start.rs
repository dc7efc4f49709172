//! StartContainer.

use super::ContainerService;
use super::model::ContainerState;
use crate::error::{Error, Result};
use crate::events::ContainerEventKind;
use crate::ports::container::ContainerExit;
use crate::sandbox::now_ns;
use crate::sandbox::timeline::Timeline;

impl ContainerService {
    pub fn start(&self, id: &str) -> Result<()> {
        let mut timeline = Timeline::start(None);
        let entry = self.find(id)?;
        // With the lookup: another call on the container (a Stop, say) may hold it.
        let _op = timeline.step("lock", || entry.lock_op());
        let record = entry.snapshot();
        if record.state != ContainerState::Created {
            return Err(Error::precondition(format!(
                "container {} is {:?}: only a created container can be started",
                record.id, record.state
            )));
        }
        let save = |r: &_| self.ports.state.save_unflushed(r);
        // Stamped before the runtime starts the process: a container that exits at once must
        // not show a finished_at before its started_at (the monitor stamps the exit).
        let started_at_ns = now_ns();
        self.begin_start(&record.id);
        let started = timeline.step("runtime_start", || self.ports.monitor.start_container(&record.pod_id, &record.id));
        // After CreateContainer's steps; the save below cannot hold its own, the amend does.
        let placed = timeline.append_to(&record.timeline, record.created_at_ns);
        if let Err(err) = started {
            // As containerd: a container that failed to start is exited, with the reason.
            let message = format!("start failed: {err}");
            let mut recorded = false;
            let saved = entry.update_persisted(save, |r| {
                r.timeline = placed;
                r.state = ContainerState::Exited;
                if r.exit.is_none() {
                    recorded = true;
                    r.exit = Some(ContainerExit {
                        container_id: r.id.clone(),
                        pid: r.process.map(|p| p.pid).unwrap_or_default(),
                        exit_code: 128,
                        signal: None,
                        finished_at_ns: now_ns(),
                        oom_killed: false,
                        message,
                    });
                }
            });
            // STOPPED once: for the exit recorded here, or for one that arrived meanwhile.
            let held_back = self.end_start(&record.id, &record.pod_id, false);
            if recorded || held_back {
                self.events.emit(&record.id, &record.pod_id, ContainerEventKind::Stopped);
            }
            if let Err(e) = saved {
                tracing::error!(container_id = %record.id, error = %e, "recording a failed start");
            }
            return Err(err.context(format!("starting container {}", record.id)));
        }
        let saved = timeline.step("state_running", || {
            entry.update_persisted(save, |r| {
                r.timeline = placed;
                r.started_at_ns = started_at_ns;
                // The process may already have exited (and been recorded) in between.
                if r.exit.is_none() {
                    r.state = ContainerState::Running;
                }
            })
        });
        self.end_start(&record.id, &record.pod_id, true);
        saved?;
        let placed = timeline.append_to(&record.timeline, record.created_at_ns);
        // Under the record's lock, so an exit saved meanwhile is kept (and its later saves
        // carry the whole timeline).
        if let Err(e) = entry.update_persisted(|r| self.ports.state.amend(r), |r| r.timeline = placed) {
            tracing::warn!(container_id = %record.id, error = %e, "recording the start timeline of the container");
        }
        tracing::info!(container_id = %record.id, "container started");
        Ok(())
    }

    /// Marks a start as under way: exits applied from now on hold their STOPPED event back.
    pub(super) fn begin_start(&self, id: &str) {
        self.starting.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), false);
    }

    /// Ends a start: sends STARTED (when `started`) and then the STOPPED of an exit applied
    /// meanwhile; without `started`, returns whether such an exit was held back.
    pub(super) fn end_start(&self, id: &str, pod_id: &str, started: bool) -> bool {
        // Under the lock, so an exit applied right after cannot send STOPPED before STARTED.
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        let held_back = starting.remove(id).unwrap_or(false);
        if started {
            self.events.emit(id, pod_id, ContainerEventKind::Started);
            if held_back {
                self.events.emit(id, pod_id, ContainerEventKind::Stopped);
            }
        }
        held_back
    }

    /// Sends the STOPPED event of an exit just applied, unless a start is under way: that one
    /// sends it after its STARTED.
    pub(super) fn emit_stopped(&self, id: &str, pod_id: &str) {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        match starting.get_mut(id) {
            Some(held_back) => *held_back = true,
            None => self.events.emit(id, pod_id, ContainerEventKind::Stopped),
        }
    }
}
