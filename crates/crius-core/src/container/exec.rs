//! ExecSync and ReopenContainerLog.

use std::time::Duration;

use super::ContainerService;
use super::model::ContainerState;
use crate::error::{Error, Result};
use crate::ports::container::ExecOutput;

impl ContainerService {
    /// Runs `command` in the container and returns its output; `timeout_secs` 0 means none.
    pub fn exec_sync(&self, id: &str, command: &[String], timeout_secs: i64) -> Result<ExecOutput> {
        if command.is_empty() {
            return Err(Error::invalid("ExecSync: cmd must not be empty"));
        }
        let record = self.find(id)?.snapshot();
        if record.state != ContainerState::Running {
            return Err(Error::precondition(format!(
                "container {} is {:?}: commands run only in a running container",
                record.id, record.state
            )));
        }
        let timeout = (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs.unsigned_abs()));
        self.ports.oci.exec_sync(&record.runtime, &record.id, command, timeout)
    }

    pub fn reopen_log(&self, id: &str) -> Result<()> {
        let entry = self.find(id)?;
        let record = entry.snapshot();
        let not_running =
            || Error::precondition(format!("container {} is not running: there is no log to reopen", record.id));
        if record.state != ContainerState::Running {
            return Err(not_running());
        }
        if record.log_path.is_none() {
            return Err(Error::precondition(format!("container {} has no log file", record.id)));
        }
        match self.ports.monitor.reopen_log(&record.pod_id, &record.id) {
            Ok(()) => Ok(()),
            // It exited after the check, before the exit watcher told us: the monitor has
            // recorded the exit (before it forgot the container, so before refusing), and the
            // caller gets what it would have got a moment later.
            Err(e) => match self.ports.exits.read(&record.id)? {
                Some(exit) => {
                    self.apply_exit(&entry, exit)?;
                    Err(not_running())
                }
                None => Err(e),
            },
        }
    }
}
