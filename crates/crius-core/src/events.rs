//! Lifecycle events for GetContainerEvents, of containers and of pod sandboxes: every
//! subscriber gets every event. One broadcast, owned by the sandbox service and shared by the
//! container service, so a subscriber sees both kinds in the order they happened.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::sandbox::PodView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's id; for a pod sandbox's own event, the sandbox id (as containerd does).
    pub container_id: String,
    pub pod_id: String,
    pub kind: ContainerEventKind,
    pub at_ns: i64,
    /// For a pod sandbox's own event: the pod as it was when the event happened (a DELETED pod
    /// cannot be looked up any more). None for a container's event.
    pub pod: Option<Arc<PodView>>,
}

/// A bounded broadcast: a subscriber that falls this far behind misses events (and is told so
/// by the channel) rather than growing the daemon's memory.
const BACKLOG: usize = 1024;

#[derive(Clone)]
pub(crate) struct Events {
    sender: broadcast::Sender<ContainerEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events { sender: broadcast::channel(BACKLOG).0 }
    }
}

impl Events {
    pub fn emit(&self, container_id: &str, pod_id: &str, kind: ContainerEventKind) {
        self.send(ContainerEvent {
            container_id: container_id.to_string(),
            pod_id: pod_id.to_string(),
            kind,
            at_ns: crate::sandbox::now_ns(),
            pod: None,
        });
    }

    /// A pod sandbox's own event, with the pod as `view` shows it.
    pub fn emit_pod(&self, view: PodView, kind: ContainerEventKind) {
        let id = view.record.id.clone();
        self.send(ContainerEvent {
            container_id: id.clone(),
            pod_id: id,
            kind,
            at_ns: crate::sandbox::now_ns(),
            pod: Some(Arc::new(view)),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.sender.subscribe()
    }

    fn send(&self, event: ContainerEvent) {
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }
}
