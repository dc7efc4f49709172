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
    /// Pods whose stop was cut short and has now been finished.
    pub stops_finished: Vec<String>,
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
                PodState::Ready if record.stopping => self.finish_cut_stop(record, &mut report),
                PodState::Ready | PodState::Stopped => self.load(record, &mut report),
            }
        }
        self.resync_host_ports(&mut report);
        self.teardown_unknown_networks(&mut report);
        Ok(report)
    }

    /// Networks of pods with no record: a reboot lost the intermediate record of a creation
    /// (it lives on tmpfs) while CNI's state and IP allocation, on disk, stayed.
    fn teardown_unknown_networks(&self, report: &mut PodRecoveryReport) {
        let known: Vec<String> = self.pods.all().iter().map(|e| e.id()).collect();
        match self.ports.network.teardown_unknown(&known) {
            Ok(ids) => report.undone.extend(ids),
            Err(e) => report.problems.push(format!("tearing down networks of unknown pods: {e}")),
        }
    }

    /// Host ports of live pods come back (their sockets died with the old daemon); rules of gone
    /// pods go.
    fn resync_host_ports(&self, report: &mut PodRecoveryReport) {
        let live: Vec<_> = self
            .pods
            .all()
            .iter()
            .filter(|e| !e.process_exited())
            .filter_map(|e| {
                e.read(|r| {
                    let network = r.network.as_ref()?;
                    (r.state == PodState::Ready
                        && !r.stopping
                        && r.config.port_mappings.iter().any(|m| m.host_port > 0))
                    .then(|| crate::ports::network::HostPortPod {
                        pod_id: r.id.clone(),
                        mappings: r.config.port_mappings.clone(),
                        ips: network.ips.clone(),
                    })
                })
            })
            .collect();
        match self.ports.host_ports.resync(&live) {
            Ok(sync) => report.problems.extend(sync.problems),
            Err(e) => report.problems.push(format!("restoring host ports: {e}")),
        }
    }

    /// A stop that a crash cut short: finish it (each step is idempotent). Kept listed either
    /// way; where it fails again the pod is not ready and a later Stop or Remove retries.
    fn finish_cut_stop(&self, record: PodRecord, report: &mut PodRecoveryReport) {
        let id = record.id.clone();
        let entry = self.register(record.clone());
        entry.mark_process_exited();
        report.not_ready += 1;
        match self.finish_stop(&entry, &record) {
            Ok(()) => report.stops_finished.push(id),
            Err(e) => report.problems.push(format!("pod sandbox {id}: finishing its stop: {e}")),
        }
    }

    fn undo_creation(&self, record: &PodRecord) -> Result<()> {
        self.release_runtime_resources(record)?;
        self.delete_pod_files(record)
    }

    /// Lists the pod and reserves its name and its SELinux level.
    fn register(&self, record: PodRecord) -> Arc<PodEntry> {
        self.names.insert(&record.name(), &record.id);
        if let Some(level) = &record.selinux_level {
            self.levels.hold(level);
        }
        let entry = Arc::new(PodEntry::new(record));
        self.pods.insert(entry.clone());
        entry
    }

    fn load(&self, record: PodRecord, report: &mut PodRecoveryReport) {
        let init = record.resources.init.filter(|_| record.state == PodState::Ready);
        let entry = self.register(record);
        match init {
            Some(init) if self.ports.monitor.is_alive(&init) => {
                report.ready += 1;
                self.watch_pod_init(entry, init);
            }
            _ => {
                report.not_ready += 1;
                // A pod that was ready and died while crius was down stops now.
                self.mark_stopped(&entry);
            }
        }
    }
}
