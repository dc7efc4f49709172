//! Pod sandboxes: one file per RPC verb over the shared service state.

pub mod files;
pub mod model;
pub mod sysctl;
pub mod validate;

mod list;
mod recover;
mod remove;
mod run;
mod status;
mod stop;
mod timeline;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use list::PodFilter;
pub use recover::PodRecoveryReport;
pub(crate) use run::now_ns;
pub use status::PodView;

use crate::ports::Ports;
use crate::store::{NameIndex, PodStore};

/// Settings of the daemon that shape pods.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub shm_size_bytes: u64,
    pub ipv6_dad: bool,
    /// Configured runtime handler names; the first is the default ("" in a request).
    pub runtime_handlers: Vec<String>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions { shm_size_bytes: 64 * 1024 * 1024, ipv6_dad: false, runtime_handlers: vec!["runc".into()] }
    }
}

/// Called before each step of RunPodSandbox with the step's name; the binary uses it for crash
/// injection in tests (CRIUS_CRASH_AT).
pub type StepHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What a pod's Stop and Remove need from its containers (implemented by the container service).
pub trait PodContainers: Send + Sync {
    fn stop_pod_containers(&self, pod_id: &str) -> crate::Result<()>;
    fn remove_pod_containers(&self, pod_id: &str) -> crate::Result<()>;
}

pub struct SandboxService {
    ports: Ports,
    containers: std::sync::OnceLock<std::sync::Weak<dyn PodContainers>>,
    pods: Arc<PodStore>,
    names: NameIndex,
    options: SandboxOptions,
    step_hook: Option<StepHook>,
}

impl SandboxService {
    pub fn new(ports: Ports, options: SandboxOptions) -> Self {
        SandboxService {
            ports,
            containers: std::sync::OnceLock::new(),
            pods: Arc::new(PodStore::new("pod sandbox")),
            names: NameIndex::new("pod sandbox"),
            options,
            step_hook: None,
        }
    }

    pub fn with_step_hook(mut self, hook: StepHook) -> Self {
        self.step_hook = Some(hook);
        self
    }

    pub fn pods(&self) -> &Arc<PodStore> {
        &self.pods
    }

    /// Connects the containers, whose Stop and Remove go with the pod's.
    pub fn set_containers(&self, containers: std::sync::Weak<dyn PodContainers>) {
        let _ = self.containers.set(containers);
    }

    fn pod_containers(&self) -> Option<Arc<dyn PodContainers>> {
        self.containers.get().and_then(std::sync::Weak::upgrade)
    }

    /// Whether the process is still the one recorded.
    pub fn process_alive(&self, process: &model::ProcRef) -> bool {
        self.ports.monitor.is_alive(process)
    }

    pub fn pod_file_paths(&self, pod_id: &str) -> crate::ports::PodFilePaths {
        self.ports.pod_files.paths(pod_id)
    }
}
