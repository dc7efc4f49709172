//! Start-up recovery of pods: finish the undo of any RunPodSandbox a crash cut short, and load
//! every committed pod with its liveness.

use std::sync::Arc;

use super::SandboxService;
use super::model::{PodRecord, PodState};
use crate::error::Result;
use crate::store::PodEntry;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodRecoveryReport {
    pub ready: usize,
    pub not_ready: usize,
    /// Pods whose creation was cut short and has now been undone.
    pub undone: Vec<String>,
    /// Problems that did not stop recovery (the pod stays listed so it can be removed).
    pub problems: Vec<String>,
}

impl SandboxService {
    pub fn recover(&self) -> Result<PodRecoveryReport> {
        let mut report = PodRecoveryReport::default();
        for record in self.ports.pod_state.load_all()? {
            match record.state {
                PodState::Creating => match self.undo_creation(&record) {
                    Ok(()) => report.undone.push(record.id.clone()),
                    Err(e) => {
                        // Kept listed (as not ready) so that an operator can remove it.
                        report.problems.push(format!("pod sandbox {}: undoing its creation: {e}", record.id));
                        self.load(record, &mut report);
                    }
                },
                PodState::Ready | PodState::Stopped => self.load(record, &mut report),
            }
        }
        Ok(report)
    }

    fn undo_creation(&self, record: &PodRecord) -> Result<()> {
        self.release_runtime_resources(record)?;
        self.delete_pod_files(record)
    }

    fn load(&self, record: PodRecord, report: &mut PodRecoveryReport) {
        let init = record.resources.init.filter(|_| record.state == PodState::Ready);
        self.names.insert(&record.name(), &record.id);
        let entry = Arc::new(PodEntry::new(record));
        self.pods.insert(entry.clone());
        match init {
            Some(init) if self.ports.monitor.is_alive(&init) => {
                report.ready += 1;
                self.ports.monitor.watch_exit(init, Box::new(move || entry.mark_process_exited()));
            }
            _ => {
                report.not_ready += 1;
                entry.mark_process_exited();
            }
        }
    }
}
