//! `runtime create` with the container's stdio held by the monitor: pipes for stdout and stderr
//! (and stdin when asked), or a console socket that receives the pty master of a terminal
//! container. The runtime exits once the container waits for `start`; the container's init is
//! then this process's child (it is the subreaper), so the monitor reaps it and sees its exit.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crius_core::ports::container::ContainerLaunch;
use crius_oci::argv::{Create, Runtime, Subcommand};
use crius_sys::process::{Pidfd, read_stat};
use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use super::console::ConsoleSocket;
use super::output::Output;
use crate::crilog::Stream;

/// How long `create` may take (pulling nothing, it is usually well under a second).
const CREATE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the cleanup `delete` of a failed create may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the runtime has to hand over the pty master once `create` has returned.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Launched {
    pub pid: i32,
    pub start_time: u64,
    pub outputs: Vec<Output>,
    /// The write end of the container's stdin pipe.
    pub stdin: Option<OwnedFd>,
}

/// Creates the container; `files` is its directory of monitor files (pid file, runtime log,
/// console socket). On failure the runtime's half-made container is deleted.
pub(crate) fn create(launch: &ContainerLaunch, files: &Path) -> Result<Launched, String> {
    std::fs::create_dir_all(files).map_err(|e| format!("creating {}: {e}", files.display()))?;
    let runtime = Runtime::from_handler(&launch.runtime).with_log(files.join("runtime.log"));
    let result = run_create(launch, &runtime, files);
    if result.is_err() {
        let plain = Runtime::from_handler(&launch.runtime);
        let delete = Subcommand::Delete { id: launch.container_id.clone(), force: true };
        if let Err(e) = crius_oci::run::run(&plain, &delete, DELETE_TIMEOUT)
            && !e.is_not_found()
        {
            super::super::log::log!("deleting the failed container {}: {e}", launch.container_id);
        }
    }
    result
}

fn run_create(launch: &ContainerLaunch, runtime: &Runtime, files: &Path) -> Result<Launched, String> {
    let pid_file = files.join("pid");
    let _ = std::fs::remove_file(&pid_file);
    let console = if launch.tty { Some(ConsoleSocket::bind(&files.join("console.sock"))?) } else { None };
    let sub = Subcommand::Create(Create {
        id: launch.container_id.clone(),
        bundle: launch.bundle.clone().into(),
        pid_file: pid_file.clone(),
        console_socket: console.as_ref().map(|c| c.runtime_path().to_path_buf()),
        no_pivot: launch.runtime.no_pivot,
    });
    let mut command = runtime.command(&sub);
    let (mut outputs, stdin) = if launch.tty { (Vec::new(), None) } else { connect_pipes(&mut command, launch.stdin)? };
    if launch.tty {
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    }
    let spawned = command.spawn();
    // The command holds the container's ends of the pipes: close them here, or the monitor
    // would never see end-of-file.
    drop(command);
    let mut child = spawned.map_err(|e| format!("starting {}: {e}", runtime.binary.display()))?;
    let pid = i32::try_from(child.id()).map_err(|_| "the runtime's pid is out of range".to_string())?;
    let exited = Pidfd::open(pid).and_then(|fd| fd.wait_exit(Some(CREATE_TIMEOUT))).unwrap_or(true);
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{} create did not finish within {CREATE_TIMEOUT:?}", runtime.binary.display()));
    }
    let status = child.wait().map_err(|e| format!("waiting for {}: {e}", runtime.binary.display()))?;
    if !status.success() {
        // The runtime's message: its JSON log, else what it printed on the container's stderr.
        let log = runtime.log.as_ref().and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        let mut stderr = Vec::new();
        for output in &mut outputs {
            output.read_raw(&mut stderr);
        }
        let message = crius_oci::output::error_message(&log, &stderr);
        return Err(format!("{} create failed ({status}): {message}", runtime.binary.display()));
    }
    if let Some(console) = &console {
        let master = console.receive(CONSOLE_TIMEOUT)?;
        outputs.push(Output::new(master, Stream::Stdout).map_err(|e| format!("configuring the pty: {e}"))?);
    }
    let (pid, start_time) = read_init(&pid_file)?;
    Ok(Launched { pid, start_time, outputs, stdin })
}

/// Pipes for stdout, stderr and (when asked) stdin; the container's ends go to `command`.
fn connect_pipes(command: &mut Command, stdin: bool) -> Result<(Vec<Output>, Option<OwnedFd>), String> {
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    command.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
    let stdin_w = if stdin {
        let (in_r, in_w) = pipe()?;
        command.stdin(Stdio::from(in_r));
        // Attach clients' stdin is written from the monitor's loop, which must never block.
        super::output::set_nonblocking(&in_w).map_err(|e| format!("configuring the stdin pipe: {e}"))?;
        Some(in_w)
    } else {
        command.stdin(Stdio::null());
        None
    };
    let configure = |e: std::io::Error| format!("configuring a pipe: {e}");
    let outputs = vec![
        Output::new(out_r, Stream::Stdout).map_err(configure)?,
        Output::new(err_r, Stream::Stderr).map_err(configure)?,
    ];
    Ok((outputs, stdin_w))
}

/// The container's init from the runtime's pid file: it must be this process's child by now,
/// or its exit could not be seen.
fn read_init(pid_file: &Path) -> Result<(i32, u64), String> {
    let text =
        std::fs::read_to_string(pid_file).map_err(|e| format!("reading the pid file {}: {e}", pid_file.display()))?;
    let pid: i32 = text.trim().parse().map_err(|_| format!("the pid file {} holds {text:?}", pid_file.display()))?;
    let stat = read_stat(pid).ok_or_else(|| format!("the container's init (pid {pid}) is already gone"))?;
    let me = std::process::id() as i32;
    if stat.ppid != me {
        return Err(format!("the container's init (pid {pid}) is a child of {}, not of the monitor", stat.ppid));
    }
    Ok((pid, stat.start_time))
}
