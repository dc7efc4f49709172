//! Running one plugin: found in the bin dirs, given the CNI_* environment and its config on
//! stdin, killed (with its whole process group: IPAM plugins are its children) when it overruns
//! the timeout.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::error::NetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

/// The per-call parameters of the CNI protocol.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: CniCommand,
    pub container_id: &'a str,
    /// Empty on DEL when the namespace is gone.
    pub netns: &'a str,
    pub if_name: &'a str,
    pub args: &'a str,
}

/// The error object a failing plugin prints (CNI spec, "Error").
#[derive(Debug, Deserialize)]
struct PluginErrorJson {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

#[derive(Debug, Clone)]
pub struct PluginRunner {
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl PluginRunner {
    pub fn new(bin_dirs: Vec<PathBuf>, timeout: Duration) -> Self {
        PluginRunner { bin_dirs, timeout }
    }

    pub fn bin_dirs(&self) -> &[PathBuf] {
        &self.bin_dirs
    }

    /// The plugin's executable: the first bin dir that has it.
    pub fn find(&self, plugin: &str) -> Result<PathBuf, NetError> {
        self.bin_dirs.iter().map(|d| d.join(plugin)).find(|p| is_executable(p)).ok_or_else(|| {
            NetError::PluginNotFound {
                plugin: plugin.to_string(),
                dirs: self.bin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            }
        })
    }

    /// Runs the plugin; its stdout on success, its own error (code and message) on failure.
    pub fn run(&self, plugin: &str, inv: &Invocation<'_>, stdin: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let path = self.find(plugin)?;
        let cni_path = std::env::join_paths(&self.bin_dirs).unwrap_or_default();
        let mut command = Command::new(&path);
        command
            .env("CNI_COMMAND", inv.command.as_str())
            .env("CNI_CONTAINERID", inv.container_id)
            .env("CNI_NETNS", inv.netns)
            .env("CNI_IFNAME", inv.if_name)
            .env("CNI_ARGS", inv.args)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the IPAM plugin it runs too.
            .process_group(0);
        // Killed with the daemon: an ADD that went on after a kill -9 could make a veth or an
        // IP allocation after the restart's DEL of the half-made pod, and leak it. This thread
        // stays blocked below until the plugin is done, as the kernel's watch of it needs.
        crius_sys::prctl::kill_child_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| NetError::Spawn { path: path.clone(), source })?;
        let pid = child.id();

        // stdin, stdout and stderr each on a thread: a config or a result bigger than a pipe
        // buffer must not deadlock the plugin against us.
        let stdin_pipe = child.stdin.take();
        let stdout_pipe = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        thread::spawn(move || {
            if let Some(mut pipe) = stdin_pipe {
                // A plugin that exits without reading its stdin is judged by its exit status.
                let _ = pipe.write_all(&stdin);
            }
        });
        let stdout = read_all(stdout_pipe);
        let stderr = read_all(stderr_pipe);
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = done_tx.send(child.wait());
        });

        let status = match done_rx.recv_timeout(self.timeout) {
            Ok(status) => status.map_err(|source| NetError::Spawn { path: path.clone(), source })?,
            Err(_) => {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                // Reaped by the waiting thread once the kill lands.
                return Err(NetError::PluginTimeout {
                    plugin: plugin.to_string(),
                    command: inv.command.as_str(),
                    secs: self.timeout.as_secs(),
                });
            }
        };
        // The pipes close when the plugin and any child of it exit; one that left a child
        // holding them gets a short grace, not a hang.
        let grace = Duration::from_secs(2);
        let out = stdout.recv_timeout(grace).unwrap_or_default();
        let err = stderr.recv_timeout(grace).unwrap_or_default();
        if status.success() {
            return Ok(out);
        }
        Err(plugin_error(plugin, inv.command, status.code(), &out, &err))
    }
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// The plugin's own error object from stdout when it printed one; else its stderr (or its exit
/// status) as the message.
fn plugin_error(plugin: &str, command: CniCommand, exit: Option<i32>, stdout: &[u8], stderr: &[u8]) -> NetError {
    if let Ok(e) = serde_json::from_slice::<PluginErrorJson>(stdout)
        && (e.code != 0 || !e.msg.is_empty())
    {
        let details = if e.details.is_empty() { String::new() } else { format!("; {}", e.details) };
        return NetError::Plugin {
            plugin: plugin.to_string(),
            command: command.as_str(),
            code: e.code,
            msg: e.msg,
            details,
        };
    }
    let text = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr }).trim().to_string();
    let msg = match (text.is_empty(), exit) {
        (false, _) => text,
        (true, Some(code)) => format!("exited with status {code} and no message"),
        (true, None) => "killed by a signal".to_string(),
    };
    NetError::Plugin { plugin: plugin.to_string(), command: command.as_str(), code: 0, msg, details: String::new() }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use super::*;

    fn plugin(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn inv(command: CniCommand) -> Invocation<'static> {
        Invocation { command, container_id: "c1", netns: "/run/netns/x", if_name: "eth0", args: "A=1" }
    }

    #[test]
    fn passes_env_and_stdin_and_returns_stdout() {
        let dir = tempfile::tempdir().unwrap();
        plugin(
            dir.path(),
            "echo",
            r#"printf '{"env":"%s %s %s %s %s","stdin":' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS"; cat; printf '}'"#,
        );
        let runner = PluginRunner::new(vec!["/nonexistent".into(), dir.path().into()], Duration::from_secs(10));
        let out = runner.run("echo", &inv(CniCommand::Add), br#"{"x":1}"#.to_vec()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["env"], "ADD c1 /run/netns/x eth0 A=1");
        assert_eq!(v["stdin"]["x"], 1);
    }

    #[test]
    fn plugin_error_object_and_plain_stderr() {
        let dir = tempfile::tempdir().unwrap();
        plugin(
            dir.path(),
            "fails",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"try again","details":"busy"}'; exit 1"#,
        );
        plugin(dir.path(), "crashes", "echo 'panic: boom' >&2; exit 2");
        plugin(dir.path(), "silent", "exit 3");
        let runner = PluginRunner::new(vec![dir.path().into()], Duration::from_secs(10));
        let err = runner.run("fails", &inv(CniCommand::Del), vec![]).unwrap_err();
        assert!(matches!(&err, NetError::Plugin { code: 11, msg, .. } if msg == "try again"), "{err:?}");
        assert_eq!(err.to_string(), "CNI plugin fails DEL failed (code 11): try again; busy");
        let err = runner.run("crashes", &inv(CniCommand::Add), vec![]).unwrap_err();
        assert!(err.to_string().contains("panic: boom"), "{err}");
        let err = runner.run("silent", &inv(CniCommand::Add), vec![]).unwrap_err();
        assert!(err.to_string().contains("status 3"), "{err}");
    }

    #[test]
    fn missing_plugin_names_the_dirs() {
        let runner = PluginRunner::new(vec!["/nonexistent-a".into(), "/nonexistent-b".into()], Duration::from_secs(1));
        let err = runner.run("bridge", &inv(CniCommand::Add), vec![]).unwrap_err();
        assert_eq!(err.to_string(), "CNI plugin \"bridge\" not found in /nonexistent-a, /nonexistent-b");
    }

    #[test]
    fn a_hanging_plugin_and_its_children_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        // The child stands for an IPAM plugin the main plugin waits on.
        plugin(dir.path(), "hangs", &format!("sleep 30 & echo $! > {}; wait", marker.display()));
        let runner = PluginRunner::new(vec![dir.path().into()], Duration::from_millis(500));
        let start = Instant::now();
        let err = runner.run("hangs", &inv(CniCommand::Add), vec![]).unwrap_err();
        assert!(matches!(err, NetError::PluginTimeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let child: i32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie waiting for its (killed) parent's reaper.
        while Path::new(&format!("/proc/{child}/status")).exists() {
            let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
            if status.contains("State:\tZ") {
                break;
            }
            assert!(Instant::now() < deadline, "child {child} of the hanging plugin still runs");
            thread::sleep(Duration::from_millis(20));
        }
    }
}
