//! Start-up recovery of containers: undo creations a crash cut short, settle exits that
//! happened while crius was down, and watch for new ones.

use std::sync::Arc;

use super::ContainerService;
use super::exits::inferred_exit;
use super::model::{ContainerRecord, ContainerState};
use crate::error::Result;
use crate::store::ContainerEntry;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContainerRecoveryReport {
    pub running: usize,
    pub exited: usize,
    pub undone: Vec<String>,
    pub problems: Vec<String>,
}

impl ContainerService {
    /// Call after the pods are recovered.
    pub fn recover(self: &Arc<Self>) -> Result<ContainerRecoveryReport> {
        let mut report = ContainerRecoveryReport::default();
        for record in self.ports.state.load_all()? {
            if record.state == ContainerState::Creating {
                match self.delete_container(&record) {
                    Ok(()) => report.undone.push(record.id.clone()),
                    Err(e) => report.problems.push(format!("container {}: undoing its creation: {e}", record.id)),
                }
                continue;
            }
            self.load(record, &mut report);
        }
        let service = Arc::downgrade(self);
        self.ports.exits.watch(Box::new(move |exit| {
            if let Some(service) = service.upgrade() {
                service.on_exit_record(exit);
            }
        }))?;
        Ok(report)
    }

    fn load(&self, record: ContainerRecord, report: &mut ContainerRecoveryReport) {
        if let Some(pod) = self.sandboxes.pods().find(&record.pod_id).ok().flatten() {
            self.names.insert(&record.name(&pod.read(|p| p.config.metadata.clone())), &record.id);
        }
        let entry = Arc::new(ContainerEntry::new(record.clone()));
        self.containers.insert(entry.clone());
        if record.exit.is_some() {
            report.exited += 1;
            return;
        }
        let alive = record
            .process
            .is_some_and(|p| matches!(self.ports.monitor.wait_exit(&p, std::time::Duration::ZERO), Ok(false)));
        if alive {
            report.running += 1;
            return;
        }
        // Gone while crius was down: the monitor's record tells how; without one, say so.
        let exit = match self.ports.exits.read(&record.id) {
            Ok(Some(exit)) => exit,
            _ => inferred_exit(
                &record.id,
                record.process.map(|p| p.pid).unwrap_or_default(),
                "the container's process is gone and its monitor recorded no exit status (the monitor died or the node rebooted)",
            ),
        };
        if let Err(e) = self.apply_exit(&entry, exit) {
            report.problems.push(format!("container {}: recording its exit: {e}", record.id));
        }
        report.exited += 1;
    }
}
