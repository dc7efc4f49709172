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

pub struct SandboxService {
    ports: Ports,
    pods: Arc<PodStore>,
    names: NameIndex,
    options: SandboxOptions,
    step_hook: Option<StepHook>,
}

impl SandboxService {
    pub fn new(ports: Ports, options: SandboxOptions) -> Self {
        SandboxService {
            ports,
            pods: Arc::new(PodStore::default()),
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
}
