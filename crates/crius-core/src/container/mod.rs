//! Containers: one file per RPC verb over the shared service state.

pub mod model;

mod create;
mod exec;
mod exits;
mod list;
mod lsm;
mod recover;
mod remove;
mod start;
mod status;
mod stop;
mod update;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::events::{ContainerEvent, ContainerEventKind};
pub use list::ContainerFilter;
pub use recover::ContainerRecoveryReport;
pub use status::ContainerView;

use crate::error::{Error, Result};
use crate::ports::container::{ContainerPorts, RuntimeHandler};
use crate::sandbox::SandboxService;
use crate::spec::HostCaps;
use crate::store::{ContainerStore, NameIndex};

#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// Configured runtime handlers by name.
    pub runtimes: BTreeMap<String, RuntimeHandler>,
    /// The handler for pods that name none.
    pub default_runtime: String,
    pub host: HostCaps,
}

pub struct ContainerService {
    ports: ContainerPorts,
    sandboxes: Arc<SandboxService>,
    containers: Arc<ContainerStore>,
    names: NameIndex,
    options: ContainerOptions,
    /// The sandbox service's, so pod and container events share one stream.
    events: crate::events::Events,
    /// Containers whose StartContainer is under way, each with whether its exit was applied in
    /// the meantime: that exit's STOPPED event is held back until start has sent STARTED, so a
    /// container that exits at once is still reported CREATED, STARTED, STOPPED in that order.
    starting: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// Itself, for work that outlives a call (set by `new_shared`).
    me: std::sync::OnceLock<std::sync::Weak<ContainerService>>,
}

impl ContainerService {
    pub fn new(ports: ContainerPorts, sandboxes: Arc<SandboxService>, options: ContainerOptions) -> Self {
        let events = sandboxes.events().clone();
        ContainerService {
            ports,
            sandboxes,
            containers: Arc::new(ContainerStore::new("container")),
            names: NameIndex::new("container"),
            options,
            events,
            starting: std::sync::Mutex::new(std::collections::HashMap::new()),
            me: std::sync::OnceLock::new(),
        }
    }

    /// The service, shared, and connected to its pods (whose Stop and Remove reach containers).
    pub fn new_shared(ports: ContainerPorts, sandboxes: Arc<SandboxService>, options: ContainerOptions) -> Arc<Self> {
        let service = Arc::new(Self::new(ports, sandboxes, options));
        let _ = service.me.set(Arc::downgrade(&service));
        let weak: std::sync::Weak<dyn crate::sandbox::PodContainers> = Arc::downgrade(&service) as _;
        service.sandboxes.set_containers(weak);
        service
    }

    pub fn containers(&self) -> &Arc<ContainerStore> {
        &self.containers
    }

    pub fn sandboxes(&self) -> &Arc<SandboxService> {
        &self.sandboxes
    }

    /// Every container and pod sandbox event from now on.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    fn runtime_for(&self, handler: &str) -> Result<RuntimeHandler> {
        let name = if handler.is_empty() { self.options.default_runtime.as_str() } else { handler };
        self.options.runtimes.get(name).cloned().ok_or_else(|| {
            Error::invalid(format!(
                "runtime handler {name:?} is not configured; configured handlers: {}",
                self.options.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    fn find(&self, id: &str) -> Result<Arc<crate::store::ContainerEntry>> {
        if id.is_empty() {
            return Err(Error::invalid("container_id must not be empty"));
        }
        self.containers.find(id)?.ok_or_else(|| Error::not_found(format!("container {id:?} not found")))
    }
}
