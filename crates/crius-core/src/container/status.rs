//! ContainerStatus: answered from memory.

use serde_json::json;

use super::ContainerService;
use super::model::{ContainerRecord, ContainerState};
use crate::error::Result;

/// What Status and List report of one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub record: ContainerRecord,
}

impl ContainerView {
    pub fn state(&self) -> ContainerState {
        self.record.state
    }

    /// CRI's reason for an exited container.
    pub fn reason(&self) -> &'static str {
        match &self.record.exit {
            Some(exit) if exit.oom_killed => "OOMKilled",
            Some(exit) if exit.exit_code == 0 => "Completed",
            Some(_) => "Error",
            None => "",
        }
    }

    /// Verbose info (JSON): what an operator needs to inspect the container by hand, with the
    /// OCI runtime spec under "runtimeSpec" as containerd reports it (crictl inspect shows it).
    pub fn verbose_info(&self, runtime_spec: Option<serde_json::Value>) -> String {
        let r = &self.record;
        let mut info = json!({
            "id": r.id,
            "sandboxID": r.pod_id,
            "pid": r.process.map(|p| p.pid),
            "runtime": r.runtime,
            "bundle": r.bundle,
            "imageId": r.image_id,
            "user": r.user,
            "exit": r.exit,
            "config": r.config,
            "timeline": r.timeline,
        });
        if let (Some(spec), Some(map)) = (runtime_spec, info.as_object_mut()) {
            map.insert("runtimeSpec".into(), spec);
        }
        info.to_string()
    }
}

impl ContainerService {
    pub fn status(&self, id: &str) -> Result<ContainerView> {
        Ok(ContainerView { record: self.find(id)?.snapshot() })
    }

    /// The view's verbose info, with the spec read from its bundle. A spec that cannot be had
    /// (the bundle is gone after a reboot, or not yet written) leaves the key out rather than
    /// failing the status: the rest of it is what an operator needs most then.
    pub fn verbose_info(&self, view: &ContainerView) -> String {
        let bundle = &view.record.bundle;
        let spec = if bundle.is_empty() {
            None
        } else {
            match self.ports.fs.read_spec(bundle) {
                Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                    Ok(spec) => Some(spec),
                    Err(e) => {
                        tracing::warn!(container_id = %view.record.id, error = %e, "the bundle's config.json is not JSON");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(container_id = %view.record.id, error = %e, "reading the bundle's config.json");
                    None
                }
            }
        };
        view.verbose_info(spec)
    }
}
