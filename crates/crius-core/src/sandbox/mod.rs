//! Pod sandboxes: one file per RPC verb over the shared service state.

pub mod files;
pub mod mcs;
pub mod model;
pub mod sysctl;
pub mod validate;

mod list;
mod recover;
mod remove;
mod run;
mod status;
mod stop;

pub use stop::TEARDOWN_NETWORK_STEP;
pub(crate) mod timeline;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use list::PodFilter;
pub use recover::PodRecoveryReport;
pub(crate) use run::now_ns;
pub use status::PodView;

use crate::events::{ContainerEvent, ContainerEventKind, Events};
use crate::ports::Ports;
use crate::store::{NameIndex, PodStore};

/// Settings of the daemon that shape pods.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub shm_size_bytes: u64,
    pub ipv6_dad: bool,
    /// Configured runtime handler names; the first is the default ("" in a request).
    pub runtime_handlers: Vec<String>,
    /// SELinux is enabled on the host: each pod gets an MCS level of its own.
    pub selinux: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            shm_size_bytes: 64 * 1024 * 1024,
            ipv6_dad: false,
            runtime_handlers: vec!["runc".into()],
            selinux: false,
        }
    }
}

/// Called before each step of RunPodSandbox with the step's name, and in a pod's teardown
/// ([`TEARDOWN_NETWORK_STEP`]); the binary uses it for crash injection in tests
/// (CRIUS_CRASH_AT).
pub type StepHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What a pod's Stop and Remove need from its containers (implemented by the container service).
pub trait PodContainers: Send + Sync {
    fn stop_pod_containers(&self, pod_id: &str) -> crate::Result<()>;
    fn remove_pod_containers(&self, pod_id: &str) -> crate::Result<()>;
    /// The pod's init is gone (it dies with the pod's monitor): no container of the pod may be
    /// reported running any more.
    fn pod_died(&self, pod_id: &str);
}

pub struct SandboxService {
    ports: Ports,
    containers: std::sync::OnceLock<std::sync::Weak<dyn PodContainers>>,
    pods: Arc<PodStore>,
    names: NameIndex,
    /// The SELinux levels live pods hold.
    levels: mcs::McsLevels,
    options: SandboxOptions,
    step_hook: Option<StepHook>,
    observer: Option<Arc<dyn crate::ports::PodObserver>>,
    /// Pod and container lifecycle events (the container service emits through a clone).
    events: Events,
}

impl SandboxService {
    pub fn new(ports: Ports, options: SandboxOptions) -> Self {
        SandboxService {
            ports,
            containers: std::sync::OnceLock::new(),
            pods: Arc::new(PodStore::new("pod sandbox")),
            names: NameIndex::new("pod sandbox"),
            levels: mcs::McsLevels::default(),
            options,
            step_hook: None,
            observer: None,
            events: Events::default(),
        }
    }

    pub fn with_step_hook(mut self, hook: StepHook) -> Self {
        self.step_hook = Some(hook);
        self
    }

    /// Tells `observer` of pods whose monitor died under them.
    pub fn with_observer(mut self, observer: Arc<dyn crate::ports::PodObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn pods(&self) -> &Arc<PodStore> {
        &self.pods
    }

    /// Every pod sandbox and container event from now on.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    pub(crate) fn events(&self) -> &Events {
        &self.events
    }

    /// Sends a pod sandbox event with the pod as its status shows it now.
    fn emit_pod(&self, entry: &crate::store::PodEntry, kind: ContainerEventKind) {
        self.events.emit_pod(PodView::of(entry), kind);
    }

    /// See the free `mark_stopped`.
    fn mark_stopped(&self, entry: &crate::store::PodEntry) -> bool {
        mark_stopped(&self.events, entry)
    }

    /// Connects the containers, whose Stop and Remove go with the pod's.
    pub fn set_containers(&self, containers: std::sync::Weak<dyn PodContainers>) {
        let _ = self.containers.set(containers);
    }

    fn pod_containers(&self) -> Option<Arc<dyn PodContainers>> {
        self.containers.get().and_then(std::sync::Weak::upgrade)
    }

    /// Watches the pod init: when it exits, the pod is not ready and its containers are told;
    /// the observer hears of it unless a Stop asked for it.
    fn watch_pod_init(&self, entry: Arc<crate::store::PodEntry>, init: model::ProcRef) {
        let containers = self.containers.get().cloned();
        let events = self.events.clone();
        let observer = self.observer.clone();
        self.ports.monitor.watch_exit(
            init,
            Box::new(move || {
                let (was_ready, unasked) = entry.read(|r| (r.state == model::PodState::Ready, !r.stopping));
                let first = mark_stopped(&events, &entry);
                if first
                    && was_ready
                    && unasked
                    && let Some(observer) = &observer
                {
                    observer.pod_monitor_exited(&entry.id());
                }
                if was_ready && let Some(containers) = containers.and_then(|w| w.upgrade()) {
                    containers.pod_died(&entry.id());
                }
            }),
        );
    }

    /// Whether the process is still the one recorded.
    pub fn process_alive(&self, process: &model::ProcRef) -> bool {
        self.ports.monitor.is_alive(process)
    }

    /// Whether pods can get a network (CRI Status's NetworkReady).
    pub fn network_readiness(&self) -> crate::ports::network::NetworkReadiness {
        self.ports.network.status()
    }

    pub fn pod_file_paths(&self, pod_id: &str) -> crate::ports::PodFilePaths {
        self.ports.pod_files.paths(pod_id)
    }
}

/// Marks the pod's init gone; the first time for a pod that was ready, sends its STOPPED (once
/// per pod, whichever of Stop, the exit watch or recovery sees it first). Free, for the exit
/// watch, which outlives `&self`. Whether this was the first time.
fn mark_stopped(events: &Events, entry: &crate::store::PodEntry) -> bool {
    let was_ready = entry.read(|r| r.state == model::PodState::Ready);
    let first = entry.mark_process_exited();
    if first && was_ready {
        events.emit_pod(PodView::of(entry), ContainerEventKind::Stopped);
    }
    first
}
