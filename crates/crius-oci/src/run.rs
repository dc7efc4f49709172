//! Runs one runtime subcommand to completion with captured output and a time limit, turning a
//! failure into an error that carries the runtime's own message.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crius_sys::process::Pidfd;

use crate::argv::{Runtime, Subcommand};
use crate::capture::{Capture, Stop};
use crate::error::{OciError, Result};
use crate::output;

/// What a runtime prints for these subcommands is small; anything past this is noise.
const OUTPUT_CAP: usize = 1024 * 1024;

/// Runs `sub`; returns its stdout on success.
pub fn run(runtime: &Runtime, sub: &Subcommand, timeout: Duration) -> Result<Vec<u8>> {
    let mut command = runtime.command(sub);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().map_err(|source| spawn_error(runtime, sub, source))?;
    let mut child = KillOnDrop(Some(child));
    let (stdout, stderr) = match child.pipes() {
        Some(pipes) => pipes,
        None => return Err(spawn_error(runtime, sub, std::io::Error::other("no stdout/stderr pipes"))),
    };
    let mut capture = Capture::new(stdout, stderr, OUTPUT_CAP).map_err(|e| spawn_error(runtime, sub, e))?;
    // The child is not reaped yet, so its pid is its own.
    let pidfd = child.pid().and_then(|pid| Pidfd::open(pid).ok());
    let stop = capture.run(pidfd.as_ref(), Some(Instant::now() + timeout));
    if stop == Stop::Deadline {
        drop(child);
        return Err(OciError::Timeout {
            binary: runtime.binary.clone(),
            subcommand: sub.name(),
            container_id: sub.container_id().to_string(),
            timeout,
        });
    }
    let status = child.wait().map_err(|e| spawn_error(runtime, sub, e))?;
    let [stdout, stderr] = capture.finish();
    if status.success() {
        return Ok(stdout.data);
    }
    let log = runtime.log.as_ref().and_then(|path| std::fs::read(path).ok()).unwrap_or_default();
    Err(failure(runtime, sub, &status.to_string(), &output::error_message(&log, &stderr.data)))
}

/// The error for a runtime that exited unsuccessfully and said `message`.
pub(crate) fn failure(runtime: &Runtime, sub: &Subcommand, status: &str, message: &str) -> OciError {
    if output::says_not_found(message) {
        return OciError::NotFound {
            binary: runtime.binary.clone(),
            root: runtime.root.clone(),
            container_id: sub.container_id().to_string(),
        };
    }
    OciError::Failed {
        binary: runtime.binary.clone(),
        subcommand: sub.name(),
        container_id: sub.container_id().to_string(),
        status: status.to_string(),
        message: if message.is_empty() { "it gave no reason".into() } else { message.to_string() },
    }
}

pub(crate) fn spawn_error(runtime: &Runtime, sub: &Subcommand, source: std::io::Error) -> OciError {
    OciError::Spawn { binary: runtime.binary.clone(), subcommand: sub.name(), source }
}

/// A runtime process that is killed and reaped if the caller gives up on it.
pub(crate) struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    pub fn pid(&self) -> Option<i32> {
        self.0.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    pub fn pipes(&mut self) -> Option<(std::process::ChildStdout, std::process::ChildStderr)> {
        let child = self.0.as_mut()?;
        Some((child.stdout.take()?, child.stderr.take()?))
    }

    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.0.take() {
            Some(mut child) => child.wait(),
            None => Err(std::io::Error::other("already waited for")),
        }
    }

    pub fn kill(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The exit status as a shell reports it: the code, or 128 + the signal.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    /// A fake runtime: a shell script that acts on its last two arguments.
    fn fake(dir: &Path, script: &str) -> Runtime {
        let path = dir.join("fakerunc");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Runtime::new(path, dir.join("root"))
    }

    #[test]
    fn success_returns_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake(dir.path(), "echo \"$@\"");
        let out = run(&rt, &Subcommand::State { id: "c1".into() }, Duration::from_secs(10)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("--root {} state c1\n", dir.path().join("root").display()));
    }

    #[test]
    fn failure_carries_the_runtime_message() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake(dir.path(), "echo 'time=\"x\" level=error msg=\"cgroup busy\"' >&2; exit 1");
        let err = run(&rt, &Subcommand::Start { id: "c1".into() }, Duration::from_secs(10)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("start c1") && text.contains("cgroup busy") && text.contains("exit status: 1"), "{text}");
        let rt = fake(dir.path(), "echo 'time=\"x\" level=error msg=\"container does not exist\"' >&2; exit 1");
        assert!(run(&rt, &Subcommand::Start { id: "c1".into() }, Duration::from_secs(10)).unwrap_err().is_not_found());
    }

    #[test]
    fn the_json_log_is_preferred() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        let script = format!(
            "echo '{{\"level\":\"error\",\"msg\":\"from the log\"}}' > {}; echo plain >&2; exit 2",
            log.display()
        );
        let rt = fake(dir.path(), &script).with_log(&log);
        let err = run(&rt, &Subcommand::Start { id: "c1".into() }, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("from the log"), "{err}");
    }

    #[test]
    fn a_hung_runtime_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake(dir.path(), "exec sleep 30");
        let start = Instant::now();
        let err = run(&rt, &Subcommand::Start { id: "c1".into() }, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, OciError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_binary() {
        let rt = Runtime::new("/nonexistent/runc", "/r");
        let err = run(&rt, &Subcommand::Start { id: "c1".into() }, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, OciError::Spawn { .. }) && err.to_string().contains("/nonexistent/runc"), "{err}");
    }
}
