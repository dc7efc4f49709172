//! `exec` with captured output: the command runs in the container through the runtime, its
//! stdout and stderr are kept up to a cap each, and on timeout the exec'd process *and
//! everything it started* are killed (found from the runtime's `--pid-file`, killed through
//! pidfds) so that the call returns promptly even when a background child still holds the pipes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crius_core::ports::container::ExecOutput;
use crius_sys::process::{Pidfd, proc_start_time, read_stat};
use crius_sys::proctree::{self, ProcId};

use crate::argv::{Exec, ExecProcess, Runtime, Subcommand};
use crate::capture::{Capture, Captured, Stop};
use crate::error::{OciError, Result};
use crate::output;
use crate::run::{KillOnDrop, exit_code, failure, spawn_error};

/// How long the runtime gets to notice the killed process and exit, before it is killed too.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs `command` in the container; `scratch` is a directory for the pid and log files.
pub fn exec_sync(
    runtime: &Runtime,
    scratch: &Path,
    container_id: &str,
    command: &[String],
    timeout: Option<Duration>,
    cap: usize,
) -> Result<ExecOutput> {
    std::fs::create_dir_all(scratch).map_err(|e| OciError::io("creating", scratch, e))?;
    let work = tempfile::Builder::new()
        .prefix("exec-")
        .tempdir_in(scratch)
        .map_err(|e| OciError::io("creating a directory in", scratch, e))?;
    let pid_file = work.path().join("pid");
    let runtime = runtime.clone().with_log(work.path().join("log.json"));
    let sub = Subcommand::Exec(Exec {
        id: container_id.to_string(),
        tty: false,
        detach: false,
        pid_file: Some(pid_file.clone()),
        console_socket: None,
        process: ExecProcess::command(command),
    });
    let mut cmd = runtime.command(&sub);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = KillOnDrop(Some(cmd.spawn().map_err(|e| spawn_error(&runtime, &sub, e))?));
    let Some((stdout, stderr)) = child.pipes() else {
        return Err(spawn_error(&runtime, &sub, std::io::Error::other("no stdout/stderr pipes")));
    };
    let runtime_pid = child.pid().unwrap_or_default();
    // Unreaped, so the pid is still the runtime's.
    let pidfd = Pidfd::open(runtime_pid).ok();
    let mut capture = Capture::new(stdout, stderr, cap).map_err(|e| spawn_error(&runtime, &sub, e))?;
    let deadline = timeout.map(|t| started + t);
    let mut timed_out = false;
    if capture.run(pidfd.as_ref(), deadline) == Stop::Deadline {
        timed_out = true;
        kill_exec_tree(&pid_file, runtime_pid);
        // The runtime reaps the killed process and exits; if it does not, it goes too.
        if capture.run(pidfd.as_ref(), Some(Instant::now() + KILL_GRACE)) != Stop::Exited {
            child.kill();
        }
        capture.drain_now();
    }
    let status = child.wait().map_err(|e| spawn_error(&runtime, &sub, e))?;
    let [out, err] = capture.finish();
    let exit_code = exit_code(status);
    if !timed_out && exit_code != 0 && !pid_file.exists() {
        // The runtime failed before the command ran: its own message is in the log (its plain
        // copy on stderr is the runtime's, not the command's).
        let log = runtime.log.as_ref().and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        return Err(failure(&runtime, &sub, &status.to_string(), &output::error_message(&log, &err.data)));
    }
    Ok(ExecOutput { exit_code, stdout: with_note(out, "stdout"), stderr: with_note(err, "stderr"), timed_out })
}

/// Output past the cap was dropped: say so at the end, where a reader looks.
fn with_note(captured: Captured, stream: &str) -> Vec<u8> {
    let mut data = captured.data;
    if captured.dropped > 0 {
        tracing::warn!(stream, dropped = captured.dropped, "exec output over the cap was dropped");
        data.extend_from_slice(format!("\n[crius: {} more bytes of {stream} dropped]\n", captured.dropped).as_bytes());
    }
    data
}

/// Kills the exec'd process named in `pid_file` and its descendants. The process is accepted
/// only while it is a descendant of the runtime (still running, so nothing can have reaped it
/// and reused its pid). Without a pid file the process has not started: killing the runtime
/// is enough.
fn kill_exec_tree(pid_file: &Path, runtime_pid: i32) {
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) else {
        return;
    };
    let Some(start_time) = proc_start_time(pid) else { return };
    if !descends_from(pid, runtime_pid) {
        tracing::warn!(pid, runtime_pid, "the exec'd pid is not the runtime's descendant; not killing it");
        return;
    }
    match proctree::kill_tree(ProcId { pid, start_time }) {
        Ok(killed) => tracing::debug!(pid, killed, "killed the timed-out exec"),
        Err(e) => tracing::warn!(pid, error = %e, "killing the timed-out exec"),
    }
}

fn descends_from(mut pid: i32, ancestor: i32) -> bool {
    for _ in 0..8 {
        match read_stat(pid) {
            Some(stat) if stat.ppid == ancestor => return true,
            Some(stat) if stat.ppid > 1 => pid = stat.ppid,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fake runtime that runs the command after the container id itself, writing its pid
    /// file first like runc does.
    fn fake(dir: &Path) -> Runtime {
        let path = dir.join("fakerunc");
        let script = r#"#!/bin/sh
pidfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pid-file) pidfile="$2"; shift 2;;
    --root|--log|--log-format) shift 2;;
    exec) shift;;
    c1) shift; break;;
    missing) echo "container does not exist" >&2; exit 1;;
    *) shift;;
  esac
done
"$@" &
child=$!
echo $child > "$pidfile"
wait $child
"#;
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Runtime::new(path, dir.join("root"))
    }

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn output_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake(dir.path());
        let out =
            exec_sync(&rt, dir.path(), "c1", &s(&["sh", "-c", "echo out; echo err >&2; exit 7"]), None, 1024).unwrap();
        assert_eq!(
            out,
            ExecOutput { exit_code: 7, stdout: b"out\n".to_vec(), stderr: b"err\n".to_vec(), timed_out: false }
        );
        // The scratch directory is cleaned.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn output_over_the_cap_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let out = exec_sync(&fake(dir.path()), dir.path(), "c1", &s(&["head", "-c", "5000", "/dev/zero"]), None, 1000)
            .unwrap();
        assert!(out.stdout.starts_with(&[0u8; 1000]));
        assert!(String::from_utf8_lossy(&out.stdout[1000..]).contains("4000 more bytes of stdout dropped"));
    }

    #[test]
    fn timeout_kills_the_tree_and_returns_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("{}", 100_000 + std::process::id());
        // A background child keeps the pipes open after its parent dies.
        let cmd = s(&["sh", "-c", &format!("sleep {marker} & sleep {marker}")]);
        let start = Instant::now();
        let out = exec_sync(&fake(dir.path()), dir.path(), "c1", &cmd, Some(Duration::from_millis(300)), 1024).unwrap();
        assert!(out.timed_out);
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
        let needle = format!("sleep\0{marker}\0");
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == needle.as_bytes())
                    && std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| !s.contains(") Z "))
            })
        };
        while left() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!left(), "a sleep {marker} survived");
    }

    #[test]
    fn a_runtime_failure_is_an_error_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake(dir.path());
        let err = exec_sync(&rt, dir.path(), "missing", &s(&["true"]), None, 1024).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
