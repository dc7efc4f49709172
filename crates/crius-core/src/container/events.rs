//! Container lifecycle events for GetContainerEvents: every subscriber gets every event.

use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub pod_id: String,
    pub kind: ContainerEventKind,
    pub at_ns: i64,
}

/// A bounded broadcast: a subscriber that falls this far behind misses events (and is told so
/// by the channel) rather than growing the daemon's memory.
const BACKLOG: usize = 1024;

pub(super) struct Events {
    sender: broadcast::Sender<ContainerEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events { sender: broadcast::channel(BACKLOG).0 }
    }
}

impl Events {
    pub fn emit(&self, container_id: &str, pod_id: &str, kind: ContainerEventKind) {
        // No subscriber is not an error.
        let _ = self.sender.send(ContainerEvent {
            container_id: container_id.to_string(),
            pod_id: pod_id.to_string(),
            kind,
            at_ns: crate::sandbox::now_ns(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.sender.subscribe()
    }
}

impl super::ContainerService {
    pub fn subscribe_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}
