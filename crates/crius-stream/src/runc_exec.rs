//! [`ExecBackend`] over `runc exec` (or crun): the command runs as a child of the runtime, in
//! the foreground, so the runtime's exit status is the command's. Without a tty the client's
//! streams are the runtime's pipes (runc hands its stdio to the process); with one, a pty
//! ([`crate::pty`]) sits between. When the session is dropped (the client left), the exec'd
//! process and everything it started are killed, found through the runtime's `--pid-file`.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crius_core::ports::container::RuntimeHandler;
use crius_oci::argv::{Exec, ExecProcess, Runtime, Subcommand};
use crius_sys::process::proc_start_time;
use crius_sys::proctree::{self, ProcId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::backend::{BoxRead, BoxWrite, ExecBackend, SessionIo, TerminalSize};
use crate::error::BackendError;
use crate::pty::{Pty, PtyMaster};
use crate::request::ExecRequest;

/// Finds the runtime handler (binary and --root) of a container.
pub type ResolveRuntime = Arc<dyn Fn(&str) -> Result<RuntimeHandler, BackendError> + Send + Sync>;

pub struct RuncExec {
    resolve: ResolveRuntime,
    /// Where each exec's pid and log files go (a temporary directory per exec).
    scratch: PathBuf,
    /// How long to wait for a tty's first size before starting (kubectl sends it at once; the
    /// runtime sizes the container's terminal from ours when it starts).
    pub first_size_wait: Duration,
    /// After the command exits, how long its output may still take to arrive (a background
    /// child keeping the pipe open does not hold the session beyond this).
    pub drain: Duration,
}

impl RuncExec {
    pub fn new(resolve: ResolveRuntime, scratch: impl Into<PathBuf>) -> Self {
        RuncExec {
            resolve,
            scratch: scratch.into(),
            first_size_wait: Duration::from_millis(200),
            drain: Duration::from_secs(2),
        }
    }
}

#[async_trait]
impl ExecBackend for RuncExec {
    async fn exec(&self, request: &ExecRequest, mut io: SessionIo) -> Result<i32, BackendError> {
        let handler = (self.resolve)(&request.container_id)?;
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| BackendError::io(format!("creating {}", self.scratch.display()), e))?;
        let work = tempfile::Builder::new()
            .prefix("exec-")
            .tempdir_in(&self.scratch)
            .map_err(|e| BackendError::io(format!("creating a directory in {}", self.scratch.display()), e))?;
        let pid_file = work.path().join("pid");
        let runtime = Runtime::from_handler(&handler).with_log(work.path().join("log.json"));
        // containerd and CRI-O give terminal sessions a TERM; images rarely set one.
        let env = if request.tty { vec!["TERM=xterm".to_string()] } else { Vec::new() };
        let sub = Subcommand::Exec(Exec {
            id: request.container_id.clone(),
            tty: request.tty,
            detach: false,
            pid_file: Some(pid_file.clone()),
            console_socket: None,
            process: ExecProcess::Args { args: request.cmd.clone(), env, cwd: None, user: None },
        });
        let mut cmd = Command::from(runtime.command(&sub));
        // Its own process group: a signal to the daemon's group (a terminal's ^C) is not the
        // exec's.
        cmd.kill_on_drop(true).process_group(0);
        let spawn_err = |e| BackendError::io(format!("running {} exec", handler.binary), e);

        let mut pumps = Vec::new();
        let (child, pty) = if request.tty {
            let size = first_size(&mut io.resize, self.first_size_wait).await;
            let pty = Pty::open(size.unwrap_or(TerminalSize { width: 80, height: 24 })).map_err(spawn_err)?;
            let slave = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(Stdio::from);
            cmd.stdin(slave(&pty.slave).map_err(spawn_err)?)
                .stdout(slave(&pty.slave).map_err(spawn_err)?)
                .stderr(slave(&pty.slave).map_err(spawn_err)?);
            let child = cmd.spawn().map_err(spawn_err)?;
            // Only the runtime may hold the slave: its exit must make our reads end.
            drop(cmd);
            drop(pty.slave);
            (child, Some(pty.master))
        } else {
            let piped = |wanted: bool| if wanted { Stdio::piped() } else { Stdio::null() };
            cmd.stdin(piped(io.stdin.is_some())).stdout(piped(io.stdout.is_some())).stderr(piped(io.stderr.is_some()));
            (cmd.spawn().map_err(spawn_err)?, None)
        };
        let exec_proc = Arc::new(std::sync::Mutex::new(None));
        let work_dir = work.path().to_path_buf();
        let mut guard = ExecGuard {
            child: Some(child),
            exec_proc: exec_proc.clone(),
            pid_file: pid_file.clone(),
            work: Some(work),
        };
        let runtime_pid = guard.pid();
        // The exec'd process's identity (pid and start time), taken as soon as the runtime
        // names it: runc's exec'd process is not its child (it is reparented past it), so
        // ancestry cannot identify it later; the start time can.
        let _watch = AbortOnDrop(tokio::spawn(watch_pid_file(pid_file.clone(), exec_proc)));

        let stdin_pump;
        let mut resizer = None;
        match pty {
            Some(master) => {
                if let Some(out) = io.stdout.take() {
                    pumps.push(tokio::spawn(pty_to_writer(master.clone(), out)));
                }
                stdin_pump = io.stdin.take().map(|input| tokio::spawn(reader_to_pty(input, master.clone())));
                if let Some(mut sizes) = io.resize.take() {
                    let master = master.clone();
                    resizer = Some(AbortOnDrop(tokio::spawn(async move {
                        while let Some(size) = sizes.recv().await {
                            let _ = master.resize(size);
                            if let Some(pid) = runtime_pid {
                                // The runtime copies our size to the container's terminal.
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(pid),
                                    nix::sys::signal::Signal::SIGWINCH,
                                );
                            }
                        }
                    })));
                }
            }
            None => {
                let child = guard.child.as_mut().ok_or_else(|| BackendError::Runtime("exec child gone".into()))?;
                if let (Some(out), Some(pipe)) = (io.stdout.take(), child.stdout.take()) {
                    pumps.push(tokio::spawn(copy_out(pipe, out)));
                }
                if let (Some(err), Some(pipe)) = (io.stderr.take(), child.stderr.take()) {
                    pumps.push(tokio::spawn(copy_out(pipe, err)));
                }
                stdin_pump = match (io.stdin.take(), child.stdin.take()) {
                    (Some(mut input), Some(mut pipe)) => Some(tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut input, &mut pipe).await;
                        // Dropping the pipe is the command's EOF.
                    })),
                    _ => None,
                };
            }
        }

        let status = guard.wait().await.map_err(|e| BackendError::io("waiting for the runtime", e))?;
        if let Some(p) = stdin_pump {
            p.abort();
        }
        drop(resizer);
        let drained = async {
            for p in pumps {
                let _ = p.await;
            }
        };
        let _ = tokio::time::timeout(self.drain, drained).await;
        let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        if code != 0 && !pid_file.exists() {
            // The runtime failed before the command ran: its reason is in its log.
            let log = std::fs::read(work_dir.join("log.json")).unwrap_or_default();
            let message = crius_oci::output::error_message(&log, b"");
            return Err(BackendError::Runtime(if message.is_empty() {
                format!("{} exec exited with {code}", handler.binary)
            } else {
                message
            }));
        }
        Ok(code)
    }
}

/// Aborts a helper task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn first_size(
    resize: &mut Option<tokio::sync::mpsc::Receiver<TerminalSize>>,
    wait: Duration,
) -> Option<TerminalSize> {
    let rx = resize.as_mut()?;
    tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
}

async fn copy_out(mut pipe: impl tokio::io::AsyncRead + Unpin, mut out: BoxWrite) {
    let _ = tokio::io::copy(&mut pipe, &mut out).await;
    let _ = out.shutdown().await;
}

async fn pty_to_writer(master: PtyMaster, mut out: BoxWrite) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = master.read(&mut buf).await {
        if n == 0 || out.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let _ = out.flush().await;
    }
    let _ = out.shutdown().await;
}

async fn reader_to_pty(mut input: BoxRead, master: PtyMaster) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = input.read(&mut buf).await {
        if n == 0 || master.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// The runtime child; dropped before it was waited for (the session was cancelled), it kills
/// the exec'd process tree first — while the runtime still lives, so the process is still
/// provably its child — and then the runtime.
struct ExecGuard {
    child: Option<Child>,
    exec_proc: Arc<std::sync::Mutex<Option<ProcId>>>,
    /// Read once more at drop: the watcher polls, and a client can leave between the runtime
    /// writing the file and the watcher's next look.
    pid_file: PathBuf,
    /// The pid file's directory, kept as long as the file may still be written.
    work: Option<tempfile::TempDir>,
}

impl ExecGuard {
    fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(Child::id).and_then(|p| i32::try_from(p).ok())
    }

    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = match self.child.as_mut() {
            Some(child) => child.wait().await?,
            None => return Err(std::io::Error::other("no child")),
        };
        self.child = None;
        Ok(status)
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let work = self.work.take();
        if let Some(proc_id) = crate::sync::lock(&self.exec_proc).or_else(|| read_pid_file(&self.pid_file)) {
            kill_abandoned(proc_id);
            let _ = child.start_kill();
            return;
        }
        // The runtime starts the process before it writes the pid file: a client that leaves in
        // between must still have it killed. Keep the runtime (the process's parent, so its
        // identity holds) and the file's directory until the file names it, off this thread.
        let pid_file = self.pid_file.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            let _ = child.start_kill();
            return;
        };
        rt.spawn(async move {
            let _work = work;
            for _ in 0..PID_FILE_WAIT_ROUNDS {
                let exited = matches!(child.try_wait(), Ok(Some(_)));
                if let Some(proc_id) = read_pid_file(&pid_file) {
                    kill_abandoned(proc_id);
                    break;
                }
                if exited {
                    break;
                }
                tokio::time::sleep(PID_FILE_POLL).await;
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
        });
    }
}

/// How long an abandoned exec's pid file is waited for (400 x 5 ms).
const PID_FILE_WAIT_ROUNDS: usize = 400;
const PID_FILE_POLL: Duration = Duration::from_millis(5);

fn kill_abandoned(proc_id: ProcId) {
    match proctree::kill_tree(proc_id) {
        Ok(killed) => tracing::debug!(pid = proc_id.pid, killed, "killed an abandoned exec"),
        Err(e) => tracing::warn!(pid = proc_id.pid, error = %e, "killing an abandoned exec"),
    }
}

/// The process the runtime's pid file names, with its start time (None: no file yet, or gone).
fn read_pid_file(pid_file: &std::path::Path) -> Option<ProcId> {
    let pid = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok())?;
    proc_start_time(pid).map(|start_time| ProcId { pid, start_time })
}

/// Waits for the runtime's pid file and records the process it names, with its start time.
async fn watch_pid_file(pid_file: PathBuf, slot: Arc<std::sync::Mutex<Option<ProcId>>>) {
    for _ in 0..2000 {
        if let Some(proc_id) = read_pid_file(&pid_file) {
            *crate::sync::lock(&slot) = Some(proc_id);
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that leaves after the runtime started the process but before it wrote the pid
    /// file: the process is still found (once the file appears) and killed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exec_abandoned_before_its_pid_file_is_still_killed() {
        let work = tempfile::tempdir().unwrap();
        let pid_file = work.path().join("pid");
        let tmp = work.path().join("pid.tmp");
        // The stand-in runtime: starts the "exec'd" process, names it 200 ms later, waits.
        let script = format!(
            "sleep 1000 & echo $! > {t}; sleep 0.2; mv {t} {p}; wait",
            t = tmp.display(),
            p = pid_file.display()
        );
        let child = Command::new("sh").args(["-c", &script]).kill_on_drop(true).spawn().unwrap();
        let runtime_pid = child.id().unwrap() as i32;
        let guard = ExecGuard {
            child: Some(child),
            exec_proc: Arc::new(std::sync::Mutex::new(None)),
            pid_file: pid_file.clone(),
            work: Some(work),
        };
        // The process exists, its pid file does not yet.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let sleeper = loop {
            if let Ok(text) = std::fs::read_to_string(&tmp) {
                break text.trim().parse::<i32>().unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "the stand-in runtime did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(!pid_file.exists());
        let start = proc_start_time(sleeper).unwrap();
        drop(guard);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proc_start_time(sleeper) == Some(start) || proc_start_time(runtime_pid).is_some() {
            assert!(std::time::Instant::now() < deadline, "the abandoned exec or its runtime survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
