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
        let pod = self.sandboxes.pods().find(&record.pod_id).ok().flatten().filter(|p| p.id() == record.pod_id);
        if let Some(pod) = &pod {
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
        // Checked after the entry is in the store: a pod init seen dying from now on reaches
        // this container through `pod_died`.
        let pod_gone = pod.as_ref().is_none_or(|p| p.process_exited());
        if alive && pod_gone {
            // The pod's init, and so its monitor, died while crius was down (a pod init is never
            // left without its monitor). Nobody holds this container's stdio or will record its
            // exit: a container in a PID namespace of its own would be reported Running forever.
            // Kill it, as `pod_died` does for a pod that dies while crius runs.
            if let Some(process) = record.process {
                let _ = self.ports.monitor.signal(&process, 9);
                let _ = self.ports.monitor.wait_exit(&process, std::time::Duration::from_secs(2));
            }
            let exit = inferred_exit(
                &record.id,
                record.process.map(|p| p.pid).unwrap_or_default(),
                "the pod's monitor or init died while crius was down; the container was killed",
            );
            if let Err(e) = self.apply_exit(&entry, exit) {
                report.problems.push(format!("container {}: recording its exit: {e}", record.id));
            }
            report.exited += 1;
            return;
        }
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
