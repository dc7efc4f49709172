//! The monitor process (`crius monitor`): read the spec, set the pod up, report, wait for the
//! daemon's commit, then serve until shutdown. See the crate docs for the whole exchange.

mod containers;
mod init;
mod lines;
mod log;
mod pod;
mod serve;
mod setup;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::process::ExitCode;

use crius_core::ports::MonitorSpec;
use crius_sys::{fds, prctl};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use self::lines::LineReader;
use self::log::log;
use self::pod::Pod;
use crate::args::MonitorArgs;
use crate::error::{MonitorError, Result, chain};
use crate::paths::PodPaths;
use crate::protocol::{Ready, decode_spec, encode_ready};

/// The entry point of the hidden `monitor` subcommand. Never panics on bad input: every failure
/// is reported on stdout as `{"ok":false,"error":..}` after undoing what was made.
pub fn run_monitor(args: MonitorArgs) -> ExitCode {
    // A write to a pipe whose reader is gone (the daemon died) must be an EPIPE error, not death:
    // the monitor then undoes the pod. The pod init relies on the same to notice an early orphan.
    // SAFETY: setting a signal to SIG_IGN installs no handler code.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let mut stdin = match stdin_reader() {
        Ok(reader) => reader,
        Err(e) => return fail_early(&e),
    };
    let (spec, paths) = match read_spec(&mut stdin, &args) {
        Ok(found) => found,
        Err(e) => return fail_early(&e),
    };
    detach_from_daemon(&paths);
    let signals = match watch_signals() {
        Ok(signals) => signals,
        Err(e) => return fail_early(&e),
    };
    log!("setting up pod {} ({:?})", spec.pod_id, spec.namespaces);
    let mut pod = Pod::new(paths, args.cgroup_root.clone());
    match setup::set_up(&args, &spec, &mut pod) {
        Ok((listener, resources)) => {
            if let Err(e) = write_stdout(&encode_ready(&Ready::Ok(resources))) {
                log!("reporting ready failed ({e}): undoing the pod");
                let _ = pod.teardown();
                return ExitCode::FAILURE;
            }
            log!("pod {} ready, waiting for commit", spec.pod_id);
            serve::serve(&mut pod, &listener, &signals, stdin)
        }
        Err(e) => {
            let mut message = chain(&e);
            log!("setup failed: {message}");
            if let Err(problems) = pod.teardown() {
                message.push_str(&format!(" (and undoing it: {problems})"));
            }
            let _ = write_stdout(&encode_ready(&Ready::Failed(message)));
            ExitCode::FAILURE
        }
    }
}

/// stdin as a line reader of its own (a duplicate descriptor, so std's buffered stdin never
/// holds lines the poll loop would miss).
fn stdin_reader() -> Result<LineReader> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| MonitorError::io("duplicating stdin", e))?;
    Ok(LineReader::new(File::from(fd)))
}

fn read_spec(stdin: &mut LineReader, args: &MonitorArgs) -> Result<(MonitorSpec, PodPaths)> {
    let line = stdin
        .read_line()
        .map_err(|e| MonitorError::io("reading the spec from stdin", e))?
        .ok_or_else(|| MonitorError::BadSpec("stdin closed before the spec was sent".into()))?;
    let spec = decode_spec(&line).map_err(MonitorError::BadSpec)?;
    if spec.pod_id != args.pod_id {
        return Err(MonitorError::BadSpec(format!(
            "the spec is for pod {:?} but --pod-id is {:?}",
            spec.pod_id, args.pod_id
        )));
    }
    let paths = PodPaths::new(&args.run_dir, args.netns_dir.as_deref(), &spec.pod_id)?;
    Ok((spec, paths))
}

/// Leaves the daemon's session (a terminal hangup or a signal to the daemon's process group does
/// not reach the pod), its working directory, and its stderr (the pod's log file instead).
/// Becomes the subreaper of whatever runs under it.
fn detach_from_daemon(paths: &PodPaths) {
    // EPERM only if already a session leader, which is as good.
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    if let Err(e) = open_log(paths) {
        log!("cannot open {}: {e}; logging to the inherited stderr", paths.log.display());
    }
    if let Err(e) = prctl::set_child_subreaper() {
        log!("cannot become a subreaper: {}", chain(&e));
    }
}

fn open_log(paths: &PodPaths) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&paths.pod_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&paths.log)?;
    fds::redirect_stderr(&log).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Blocks SIGCHLD, SIGTERM and SIGINT and returns a signalfd for them. Blocked *before* the pod
/// init is created, so its exit cannot be missed.
fn watch_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| MonitorError::io("blocking signals", e.into()))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| MonitorError::io("creating a signalfd", e.into()))
}

fn fail_early(e: &MonitorError) -> ExitCode {
    let message = chain(e);
    log!("{message}");
    let _ = write_stdout(&encode_ready(&Ready::Failed(message)));
    ExitCode::FAILURE
}

fn write_stdout(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.flush()
}
