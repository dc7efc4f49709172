//! Attach for the streaming server: the container's stdio is held by its pod's monitor, so a
//! session is a connection to that monitor's socket (crius_monitor::attach_client).

use std::path::PathBuf;
use std::sync::Arc;

use crius_monitor::attach_client::{AttachIo, attach};
use crius_monitor::paths::PodPaths;
use crius_stream::{AttachBackend, AttachRequest, BackendError, SessionIo, TerminalSize};

/// The pod that holds a container (the container service's answer).
pub type ResolvePod = Arc<dyn Fn(&str) -> Result<String, BackendError> + Send + Sync>;

pub struct MonitorAttach {
    run_dir: PathBuf,
    pod_of: ResolvePod,
}

impl MonitorAttach {
    pub fn new(run_dir: PathBuf, pod_of: ResolvePod) -> Self {
        MonitorAttach { run_dir, pod_of }
    }
}

#[async_trait::async_trait]
impl AttachBackend for MonitorAttach {
    async fn attach(&self, request: &AttachRequest, io: SessionIo) -> Result<(), BackendError> {
        let id = &request.container_id;
        let pod_id = (self.pod_of)(id)?;
        let paths = PodPaths::new(&self.run_dir, None, &pod_id).map_err(|e| BackendError::Runtime(e.to_string()))?;
        let dims: fn(&TerminalSize) -> (u16, u16) = |s| (s.width, s.height);
        let streams =
            AttachIo { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, resize: io.resize.map(|rx| (rx, dims)) };
        attach(&paths.socket, id, streams).await.map_err(|e| BackendError::Runtime(crius_monitor::error::chain(&e)))
    }
}
