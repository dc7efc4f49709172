//! crius-core's `OciRuntime` port: the runtime calls the daemon makes itself (the monitor makes
//! `create` and `start`, since it holds the container's stdio).

use std::path::PathBuf;
use std::time::Duration;

use crius_core::Error;
use crius_core::ports::container::{ExecOutput, OciRuntime, RuntimeHandler};
use oci_spec::runtime::LinuxResources;

use crate::argv::{Runtime, Subcommand};
use crate::error::{OciError, Result};
use crate::output::{ContainerState, parse_state};
use crate::{exec, run, validate_container_id};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciConfig {
    /// For short-lived files: exec pid and log files, resource JSON (e.g. /run/crius/oci).
    pub scratch_dir: PathBuf,
    /// Most of each of stdout and stderr that `exec_sync` keeps.
    pub exec_output_cap: usize,
    /// How long delete, kill, state and update may take before the runtime is killed.
    pub command_timeout: Duration,
}

impl OciConfig {
    pub fn new(scratch_dir: impl Into<PathBuf>) -> Self {
        OciConfig {
            scratch_dir: scratch_dir.into(),
            exec_output_cap: 16 << 20,
            command_timeout: Duration::from_secs(60),
        }
    }
}

pub struct OciPort {
    config: OciConfig,
}

impl OciPort {
    pub fn new(config: OciConfig) -> Self {
        OciPort { config }
    }

    pub fn config(&self) -> &OciConfig {
        &self.config
    }

    fn run(&self, handler: &RuntimeHandler, sub: &Subcommand) -> Result<Vec<u8>> {
        validate_container_id(sub.container_id())?;
        run::run(&Runtime::from_handler(handler), sub, self.config.command_timeout)
    }

    /// `state`: what the runtime knows of the container.
    pub fn state(&self, handler: &RuntimeHandler, container_id: &str) -> Result<ContainerState> {
        let out = self.run(handler, &Subcommand::State { id: container_id.to_string() })?;
        parse_state(&out).map_err(|reason| OciError::BadState {
            binary: handler.binary.clone().into(),
            container_id: container_id.to_string(),
            reason,
        })
    }

    /// `kill`: sends `signal` to the container's init (`all`: to every process in it).
    pub fn kill(&self, handler: &RuntimeHandler, container_id: &str, signal: i32, all: bool) -> Result<()> {
        self.run(handler, &Subcommand::Kill { id: container_id.to_string(), signal, all }).map(drop)
    }

    /// `delete --force`; an unknown container counts as deleted.
    pub fn delete_container(&self, handler: &RuntimeHandler, container_id: &str) -> Result<()> {
        match self.run(handler, &Subcommand::Delete { id: container_id.to_string(), force: true }) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn exec(
        &self,
        handler: &RuntimeHandler,
        container_id: &str,
        command: &[String],
        timeout: Option<Duration>,
    ) -> Result<ExecOutput> {
        validate_container_id(container_id)?;
        let timeout = timeout.filter(|t| !t.is_zero());
        exec::exec_sync(
            &Runtime::from_handler(handler),
            &self.config.scratch_dir,
            container_id,
            command,
            timeout,
            self.config.exec_output_cap,
        )
    }

    /// `update --resources FILE`, with `r` as crius-core's spec builder made it (what is left out
    /// keeps its current value).
    pub fn update(&self, handler: &RuntimeHandler, container_id: &str, r: &LinuxResources) -> Result<()> {
        validate_container_id(container_id)?;
        let json = serde_json::to_vec(r)
            .map_err(|source| OciError::Resources { container_id: container_id.to_string(), source })?;
        let dir = &self.config.scratch_dir;
        std::fs::create_dir_all(dir).map_err(|e| OciError::io("creating", dir, e))?;
        let file = tempfile::Builder::new()
            .prefix("resources-")
            .suffix(".json")
            .tempfile_in(dir)
            .map_err(|e| OciError::io("creating a file in", dir, e))?;
        std::fs::write(file.path(), json).map_err(|e| OciError::io("writing", file.path(), e))?;
        self.run(handler, &Subcommand::Update { id: container_id.to_string(), resources: file.path().to_path_buf() })
            .map(drop)
    }
}

impl OciRuntime for OciPort {
    fn delete(&self, runtime: &RuntimeHandler, container_id: &str) -> crius_core::Result<()> {
        self.delete_container(runtime, container_id)
            .map_err(|e| to_core(e, format!("deleting container {container_id} with {}", runtime.name)))
    }

    fn exec_sync(
        &self,
        runtime: &RuntimeHandler,
        container_id: &str,
        command: &[String],
        timeout: Option<Duration>,
    ) -> crius_core::Result<ExecOutput> {
        self.exec(runtime, container_id, command, timeout)
            .map_err(|e| to_core(e, format!("running {command:?} in container {container_id}")))
    }

    fn update_resources(
        &self,
        runtime: &RuntimeHandler,
        container_id: &str,
        resources: &LinuxResources,
    ) -> crius_core::Result<()> {
        self.update(runtime, container_id, resources)
            .map_err(|e| to_core(e, format!("updating the resources of container {container_id}")))
    }
}

/// Maps onto the domain's kinds: a bad id is the caller's mistake, an unknown container is not
/// found, the rest is the runtime failing.
fn to_core(e: OciError, what: String) -> Error {
    match e {
        OciError::InvalidId { .. } => Error::invalid(e.to_string()).context(what),
        OciError::NotFound { .. } => Error::not_found(e.to_string()).context(what),
        _ => Error::internal(what, e),
    }
}

#[cfg(test)]
mod tests {
    use crius_core::ErrorKind;

    use super::*;

    #[test]
    fn bad_ids_are_refused_before_running_anything() {
        let port = OciPort::new(OciConfig::new("/nonexistent"));
        let handler = RuntimeHandler {
            name: "runc".into(),
            binary: "/nonexistent/runc".into(),
            root: "/r".into(),
            ..Default::default()
        };
        let err = port.delete(&handler, "--all").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        let err = port.exec_sync(&handler, "../x", &["true".into()], None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        let err = port.delete(&handler, "c1").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.to_string().contains("/nonexistent/runc"), "{err}");
    }
}
