//! StopContainer: the stop signal, a grace period, then SIGKILL.

use std::time::Duration;

use super::ContainerService;
use super::model::ContainerState;
use crate::error::{Error, Result};

const SIGKILL: i32 = 9;
/// How long a SIGKILLed container may take to be gone before Stop reports it.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl ContainerService {
    /// Stopping a stopped container is success.
    pub fn stop(&self, id: &str, timeout_secs: i64) -> Result<()> {
        let entry = self.find(id)?;
        let _op = entry.lock_op();
        let record = entry.snapshot();
        if matches!(record.state, ContainerState::Exited | ContainerState::Creating) || record.exit.is_some() {
            return Ok(());
        }
        let Some(process) = record.process else {
            return self.settle_exit(&entry, "the container has no process");
        };
        let monitor = &self.ports.monitor;
        let mut gone = false;
        if timeout_secs > 0 && record.state == ContainerState::Running {
            gone = !monitor.signal(&process, record.stop_signal)?;
            if !gone {
                gone = monitor.wait_exit(&process, Duration::from_secs(timeout_secs.unsigned_abs()))?;
            }
        }
        if !gone {
            monitor.signal(&process, SIGKILL)?;
            if !monitor.wait_exit(&process, KILL_WAIT)? {
                return Err(Error::internal(
                    format!("stopping container {}", record.id),
                    format!("pid {} is still there {KILL_WAIT:?} after SIGKILL", process.pid),
                ));
            }
        }
        self.settle_exit(&entry, "the container was stopped but its monitor recorded no exit status")?;
        tracing::info!(container_id = %record.id, "container stopped");
        Ok(())
    }
}
