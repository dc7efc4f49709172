//! The daemon's side: crius-core's `PodMonitor` port over real monitor processes.
//!
//! The daemon is a multi-threaded tokio process, so it never forks: it starts
//! `<exe> monitor ...` with `std::process::Command` and talks to it over pipes (spec, ready
//! line, commit) and later over the monitor's socket.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crius_core::Error;
use crius_core::ports::container::{ContainerLaunch, ContainerMonitor};
use crius_core::ports::{MonitorSpec, PendingMonitor, PodMonitor};
use crius_core::sandbox::model::{PodResources, ProcRef};
use crius_sys::cgroups::{self, CgroupDriver, CgroupLayout, DEFAULT_ROOT};
use crius_sys::namespaces::NsKind;
use crius_sys::process::Pidfd;
use crius_sys::{mounts, process};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use crate::args::MonitorArgs;
use crate::error::{MonitorError, chain};
use crate::exits::ExitDir;
use crate::paths::{PodPaths, namespace_set};
use crate::protocol::{COMMIT, MAX_LINE, Op, Ready, Response, decode_ready, encode_spec};
use crate::{client, exit_watch, reaper};

/// How the daemon runs monitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// The crius binary (the daemon passes the target of /proc/self/exe).
    pub exe: PathBuf,
    /// crius's volatile directory (/run/crius).
    pub run_dir: PathBuf,
    /// Where pod network namespaces are also pinned for `ip netns` (/run/netns), if at all.
    pub netns_dir: Option<PathBuf>,
    pub cgroup_root: PathBuf,
    pub cgroup_driver: CgroupDriver,
    /// How long `start` waits for the monitor to report ready before killing it.
    pub ready_timeout: Duration,
    /// How long `stop` waits for the monitor to answer a shutdown request (it kills, records and
    /// deletes the pod's containers first, one runtime call each).
    pub shutdown_timeout: Duration,
    /// How long dropping an uncommitted monitor waits for it to undo itself.
    pub undo_timeout: Duration,
    /// How long a container request (create, start, reopen_log) may take.
    pub container_timeout: Duration,
}

impl MonitorConfig {
    pub fn new(exe: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        MonitorConfig {
            exe: exe.into(),
            run_dir: run_dir.into(),
            netns_dir: None,
            cgroup_root: PathBuf::from(DEFAULT_ROOT),
            cgroup_driver: CgroupDriver::Cgroupfs,
            ready_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            undo_timeout: Duration::from_secs(10),
            container_timeout: Duration::from_secs(60),
        }
    }
}

/// Longest wait for a status reply.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `stop` waits for a SIGKILLed process to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

pub struct MonitorPort {
    config: MonitorConfig,
    /// A host fact, detected once (the systemd driver needs systemd).
    systemd_running: bool,
    layout: OnceLock<CgroupLayout>,
}

impl MonitorPort {
    pub fn new(config: MonitorConfig) -> Self {
        MonitorPort { config, systemd_running: cgroups::systemd_running(), layout: OnceLock::new() }
    }

    /// Overrides the detected "is systemd running" (for tests of the systemd driver's paths).
    pub fn with_systemd_running(mut self, running: bool) -> Self {
        self.systemd_running = running;
        self
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Where the monitor of `pod_id` keeps its things.
    pub fn paths(&self, pod_id: &str) -> Result<PodPaths, MonitorError> {
        PodPaths::new(&self.config.run_dir, self.config.netns_dir.as_deref(), pod_id)
    }

    /// Asks the monitor of `pod_id` for its status.
    pub fn status(&self, pod_id: &str) -> Result<Response, MonitorError> {
        let paths = self.paths(pod_id)?;
        // A status answer is immediate: a monitor that takes longer is stuck.
        client::request(&paths.socket, Op::Status, self.config.shutdown_timeout.min(STATUS_TIMEOUT))
    }

    /// The exit records the monitors write (`<run_dir>/exits`): crius-core's `ExitRecords`.
    pub fn exit_records(&self) -> ExitDir {
        ExitDir::new(self.config.run_dir.join("exits"))
    }

    /// Sends a container op to the monitor of `pod_id`; a refusal is an error.
    fn container_request(&self, pod_id: &str, op: Op) -> Result<Response, MonitorError> {
        let paths = self.paths(pod_id)?;
        let not_running =
            |source| MonitorError::NotRunning { pod_id: pod_id.to_string(), socket: paths.socket.clone(), source };
        if !paths.socket.exists() {
            return Err(not_running(io::Error::from(io::ErrorKind::NotFound)));
        }
        let name = op.name();
        let reply = match client::request(&paths.socket, op, self.config.container_timeout) {
            Ok(reply) => reply,
            Err(MonitorError::Io { source, .. })
                if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) =>
            {
                return Err(not_running(source));
            }
            Err(e) => return Err(e),
        };
        if !reply.ok {
            let message = reply.error.unwrap_or_else(|| "no reason given".into());
            return Err(MonitorError::Refused(format!("{name}: {message}")));
        }
        Ok(reply)
    }

    /// The flags the monitor of `pod_id` is started with.
    pub fn monitor_args(&self, pod_id: &str) -> MonitorArgs {
        MonitorArgs {
            run_dir: self.config.run_dir.clone(),
            netns_dir: self.config.netns_dir.clone(),
            cgroup_root: self.config.cgroup_root.clone(),
            cgroup_driver: self.config.cgroup_driver,
            pod_id: pod_id.to_string(),
        }
    }

    fn plan_resources(&self, spec: &MonitorSpec) -> Result<PodResources, MonitorError> {
        let paths = self.paths(&spec.pod_id)?;
        let cgroup = if spec.cgroup_parent.is_empty() {
            None
        } else {
            let path = cgroups::cgroup_path(
                self.config.cgroup_driver,
                &spec.cgroup_parent,
                &spec.pod_id,
                self.systemd_running,
            )
            .map_err(|e| MonitorError::sys("the pod's cgroup", e))?;
            Some(path)
        };
        Ok(PodResources {
            monitor: None,
            init: None,
            namespaces: paths.namespace_paths(namespace_set(&spec.namespaces)),
            cgroup,
        })
    }

    /// Starts the monitor and reads its ready line. On any failure the monitor process is gone
    /// (it undid itself, or was killed) when this returns.
    fn spawn_monitor(&self, spec: &MonitorSpec) -> Result<(PodResources, Pending), MonitorError> {
        let mut command = Command::new(&self.config.exe);
        command
            .arg("monitor")
            .args(self.monitor_args(&spec.pod_id).to_argv())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The monitor logs to its own file once it knows the pod's directory.
            .stderr(Stdio::null());
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent. A session of
        // its own from the first instruction: a Ctrl-C or hangup aimed at the daemon's process
        // group never reaches a pod's monitor (the monitor calls setsid again; EPERM is fine).
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| MonitorError::Spawn { exe: self.config.exe.clone(), source })?;
        let mut starting = Starting { child: Some(child) };
        let resources = match starting.exchange(spec, self.config.ready_timeout)? {
            Ready::Ok(resources) => resources,
            Ready::Failed(message) => return Err(MonitorError::MonitorFailed { pod_id: spec.pod_id.clone(), message }),
        };
        let started_as = starting.child.as_ref().and_then(|c| i32::try_from(c.id()).ok());
        let reported = resources.monitor.map(|m| m.pid);
        if reported.is_none() || reported != started_as {
            return Err(MonitorError::Protocol(format!(
                "the monitor reported pid {reported:?}, but it was started as {started_as:?}"
            )));
        }
        let Some(mut child) = starting.child.take() else {
            return Err(MonitorError::Protocol("the monitor process handle was lost".into()));
        };
        let stdin = child.stdin.take();
        let pending =
            Pending { pod_id: spec.pod_id.clone(), child: Some(child), stdin, undo_timeout: self.config.undo_timeout };
        Ok((resources, pending))
    }

    fn layout(&self) -> Result<&CgroupLayout, MonitorError> {
        if let Some(layout) = self.layout.get() {
            return Ok(layout);
        }
        let detected = CgroupLayout::detect(&self.config.cgroup_root).map_err(|e| {
            MonitorError::sys(format!("finding the cgroup hierarchies under {}", self.config.cgroup_root.display()), e)
        })?;
        Ok(self.layout.get_or_init(|| detected))
    }

    /// The idempotent teardown shared by `stop` and a failed `start`. Goes on past failures and
    /// returns them all.
    fn teardown(&self, pod_id: &str, resources: &PodResources) -> Result<(), Vec<String>> {
        let paths = self.paths(pod_id).map_err(|e| vec![chain(&e)])?;
        let mut problems = Vec::new();

        // The monitor undoes everything itself when it can; what follows covers a monitor that is
        // dead, stuck, or from before a reboot.
        if paths.socket.exists() {
            match client::request(&paths.socket, Op::Shutdown, self.config.shutdown_timeout) {
                Ok(reply) if reply.ok => {}
                Ok(reply) => tracing::debug!(pod_id, error = ?reply.error, "monitor shutdown incomplete"),
                Err(e) => tracing::debug!(pod_id, error = %chain(&e), "monitor did not answer shutdown"),
            }
        }
        for (what, proc_ref) in [("pod init", resources.init), ("monitor", resources.monitor)] {
            let Some(p) = proc_ref else { continue };
            match process::kill_verified_and_wait(p.pid, p.start_time, KILL_WAIT) {
                Ok(true) => {}
                Ok(false) => problems.push(format!("the {what} (pid {}) is still running after SIGKILL", p.pid)),
                Err(e) => problems.push(format!("killing the {what} (pid {}): {}", p.pid, chain(&e))),
            }
        }
        for pin in pins_to_remove(&paths, resources) {
            if let Err(e) = mounts::unmount_and_remove(&pin) {
                problems.push(format!("unpinning {}: {}", pin.display(), chain(&e)));
            }
        }
        if let Some(cgroup) = &resources.cgroup
            && let Err(problem) = self.remove_cgroup(pod_id, cgroup)
        {
            problems.push(problem);
        }
        match std::fs::remove_file(&paths.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("removing {}: {e}", paths.socket.display())),
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn remove_cgroup(&self, pod_id: &str, cgroup: &str) -> Result<(), String> {
        // A record is data from disk: only ever remove a cgroup named for this pod.
        let leaf = cgroup.rsplit('/').next().unwrap_or_default();
        if leaf != pod_id && leaf != format!("crius-{pod_id}.scope") {
            return Err(format!("refusing to remove cgroup {cgroup}: it is not named for pod {pod_id}"));
        }
        let layout = self.layout().map_err(|e| chain(&e))?;
        layout.remove(cgroup).map_err(|e| format!("removing cgroup {cgroup}: {}", chain(&e)))
    }
}

/// Every pin the pod may have: the planned ones for every kind, plus recorded ones elsewhere
/// (the run dir may have changed since), when they have the shape of this pod's pins.
fn pins_to_remove(paths: &PodPaths, resources: &PodResources) -> Vec<PathBuf> {
    let mut pins = paths.all_pins();
    let ns = &resources.namespaces;
    let recorded = [(NsKind::Net, &ns.net), (NsKind::Ipc, &ns.ipc), (NsKind::Uts, &ns.uts), (NsKind::Pid, &ns.pid)];
    for (kind, path) in recorded {
        if let Some(path) = path.as_deref().map(Path::new)
            && !pins.iter().any(|p| p == path)
        {
            if paths.looks_like_pin(kind, path) {
                pins.push(path.to_path_buf());
            } else {
                tracing::warn!(pod_id = %paths.pod_id, path = %path.display(), "ignoring a recorded pin path of an unexpected shape");
            }
        }
    }
    // The alias may sit in another netns_dir than today's config names; only its name is checked.
    let alias_name = format!("crius-{}", paths.pod_id);
    if let Some(alias) = ns.net_alias.as_deref().map(Path::new)
        && !pins.iter().any(|p| p == alias)
    {
        if alias.is_absolute() && alias.file_name().is_some_and(|n| *n == *alias_name) {
            pins.push(alias.to_path_buf());
        } else {
            tracing::warn!(pod_id = %paths.pod_id, path = %alias.display(), "ignoring a recorded netns alias of an unexpected shape");
        }
    }
    pins
}

impl PodMonitor for MonitorPort {
    fn plan(&self, spec: &MonitorSpec) -> crius_core::Result<PodResources> {
        self.plan_resources(spec).map_err(|e| to_core(e, format!("planning the monitor of pod {}", spec.pod_id)))
    }

    fn start(&self, spec: &MonitorSpec) -> crius_core::Result<(PodResources, Box<dyn PendingMonitor>)> {
        let planned = self.plan(spec)?;
        match self.spawn_monitor(spec) {
            Ok((resources, pending)) => Ok((resources, Box::new(pending))),
            Err(e) => {
                // The monitor undoes itself when it fails, but one that was killed on a timeout
                // could not: clean whatever the plan says it may have made.
                if let Err(problems) = self.teardown(&spec.pod_id, &planned) {
                    tracing::warn!(pod_id = %spec.pod_id, problems = %problems.join("; "), "cleaning up after a failed monitor start");
                }
                Err(to_core(e, format!("starting the monitor of pod {}", spec.pod_id)))
            }
        }
    }

    fn stop(&self, pod_id: &str, resources: &PodResources) -> crius_core::Result<()> {
        self.teardown(pod_id, resources)
            .map_err(|problems| Error::internal(format!("stopping the monitor of pod {pod_id}"), problems.join("; ")))
    }

    fn is_alive(&self, process: &ProcRef) -> bool {
        process::is_alive(process.pid, process.start_time)
    }

    fn watch_exit(&self, process: ProcRef, on_exit: Box<dyn FnOnce() + Send>) {
        exit_watch::watch_exit(process, on_exit);
    }
}

impl ContainerMonitor for MonitorPort {
    fn create_container(&self, pod_id: &str, launch: &ContainerLaunch) -> crius_core::Result<ProcRef> {
        let what = || format!("creating container {} in pod {pod_id}", launch.container_id);
        let reply = self
            .container_request(pod_id, Op::CreateContainer { launch: launch.clone() })
            .map_err(|e| to_core(e, what()))?;
        reply.container.ok_or_else(|| {
            to_core(MonitorError::Protocol("the monitor's reply to create_container names no process".into()), what())
        })
    }

    fn start_container(&self, pod_id: &str, container_id: &str) -> crius_core::Result<()> {
        self.container_request(pod_id, Op::StartContainer { container_id: container_id.to_string() })
            .map(drop)
            .map_err(|e| to_core(e, format!("starting container {container_id} in pod {pod_id}")))
    }

    fn reopen_log(&self, pod_id: &str, container_id: &str) -> crius_core::Result<()> {
        self.container_request(pod_id, Op::ReopenLog { container_id: container_id.to_string() })
            .map(drop)
            .map_err(|e| to_core(e, format!("reopening the log of container {container_id} in pod {pod_id}")))
    }

    fn signal(&self, process: &ProcRef, signal: i32) -> crius_core::Result<bool> {
        let sig = Signal::try_from(signal).map_err(|_| Error::invalid(format!("{signal} is not a signal number")))?;
        let what = || format!("sending signal {signal} to pid {}", process.pid);
        match Pidfd::open_verified(process.pid, process.start_time) {
            // Gone, or the pid names another process now: nothing to signal.
            Ok(None) => Ok(false),
            Ok(Some(pidfd)) => pidfd.send_signal(sig).map_err(|e| Error::internal(what(), e)),
            Err(e) => Err(Error::internal(what(), e)),
        }
    }

    fn wait_exit(&self, process: &ProcRef, timeout: Duration) -> crius_core::Result<bool> {
        let what = || format!("waiting for pid {} to exit", process.pid);
        match Pidfd::open_verified(process.pid, process.start_time) {
            Ok(None) => Ok(true),
            // Readable once the process has exited, reaped or not (the monitor reaps it).
            Ok(Some(pidfd)) => pidfd.wait_exit(Some(timeout)).map_err(|e| Error::internal(what(), e)),
            Err(e) => Err(Error::internal(what(), e)),
        }
    }
}

/// A monitor between spawn and its ready line. Dropped before that, it kills the monitor and
/// waits for it.
struct Starting {
    child: Option<Child>,
}

impl Starting {
    /// Sends the spec and reads the ready line.
    fn exchange(&mut self, spec: &MonitorSpec, timeout: Duration) -> Result<Ready, MonitorError> {
        let child = self.child.as_mut().ok_or_else(|| MonitorError::Protocol("no monitor process".into()))?;
        let mut stdin = child.stdin.take().ok_or_else(|| MonitorError::Protocol("the monitor has no stdin".into()))?;
        let written = stdin.write_all(encode_spec(spec).as_bytes()).and_then(|()| stdin.flush());
        child.stdin = Some(stdin);
        written.map_err(|e| MonitorError::io("sending the spec to the monitor", e))?;
        let mut stdout =
            child.stdout.take().ok_or_else(|| MonitorError::Protocol("the monitor has no stdout".into()))?;
        let line = read_line_within(&mut stdout, timeout).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                MonitorError::ReadyTimeout { pod_id: spec.pod_id.clone(), timeout }
            } else {
                MonitorError::io("reading the monitor's ready line", e)
            }
        })?;
        // stdout is dropped here: after the ready line the monitor writes nothing more to it.
        let Some(line) = line else {
            return Err(MonitorError::MonitorFailed {
                pod_id: spec.pod_id.clone(),
                message: "it exited without reporting (see its monitor.log)".into(),
            });
        };
        decode_ready(&line).map_err(MonitorError::Protocol)
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A monitor that reported failure has undone itself and is exiting; give it a moment
            // before the SIGKILL (which would also stop an undo in progress).
            drop(child.stdin.take());
            if !wait_child(&child, Duration::from_secs(2)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A started monitor waiting for the daemon to record the pod.
struct Pending {
    pod_id: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    undo_timeout: Duration,
}

impl PendingMonitor for Pending {
    fn commit(mut self: Box<Self>) -> crius_core::Result<()> {
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(format!("{COMMIT}\n").as_bytes()).and_then(|()| stdin.flush()),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin already closed")),
        };
        if let Err(e) = written {
            // Drop then waits for the monitor, which undoes the pod on its own.
            return Err(Error::internal(format!("committing the monitor of pod {}", self.pod_id), e));
        }
        drop(self.stdin.take());
        if let Some(child) = self.child.take() {
            reaper::adopt(child);
        }
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        // Closing stdin before commit tells the monitor to undo everything and exit. Wait for it,
        // so whoever dropped this finds the pod's resources gone.
        drop(self.stdin.take());
        if !wait_child(&child, self.undo_timeout) {
            tracing::warn!(pod_id = %self.pod_id, "the uncommitted monitor is still undoing the pod");
        }
        reaper::adopt(child);
    }
}

/// Waits up to `timeout` for `child` to exit, without reaping it. True when it has exited.
fn wait_child(child: &Child, timeout: Duration) -> bool {
    let Ok(pid) = i32::try_from(child.id()) else { return false };
    match process::Pidfd::open(pid) {
        Ok(pidfd) => pidfd.wait_exit(Some(timeout)).unwrap_or(false),
        Err(_) => true,
    }
}

/// Reads one line (without its newline) within `timeout`; None when the writer closed first.
fn read_line_within(reader: &mut (impl Read + AsFd), timeout: Duration) -> io::Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
        }
        if buf.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Maps an adapter error onto the domain's kinds, with what crius was doing.
fn to_core(e: MonitorError, what: impl fmt::Display) -> Error {
    let kind_error = match &e {
        MonitorError::InvalidId { .. } => Some(Error::invalid(chain(&e))),
        // The pod is not (or no longer) ready: its monitor is gone.
        MonitorError::NotRunning { .. } => Some(Error::precondition(chain(&e))),
        MonitorError::Sys { source, .. } => match source {
            crius_sys::Error::InvalidCgroupParent { .. } | crius_sys::Error::InvalidCgroupName { .. } => {
                Some(Error::invalid(chain(&e)))
            }
            crius_sys::Error::SystemdNotRunning => Some(Error::precondition(chain(&e))),
            _ => None,
        },
        _ => None,
    };
    match kind_error {
        Some(err) => err.context(what),
        None => Error::internal(what.to_string(), e),
    }
}

#[cfg(test)]
mod tests {
    use crius_core::ErrorKind;
    use crius_core::sandbox::model::NewNamespaces;

    use super::*;

    fn port(driver: CgroupDriver, systemd: bool) -> MonitorPort {
        let mut config = MonitorConfig::new("/nonexistent/crius", "/run/crius");
        config.netns_dir = Some("/run/netns".into());
        config.cgroup_driver = driver;
        MonitorPort::new(config).with_systemd_running(systemd)
    }

    fn spec(parent: &str) -> MonitorSpec {
        MonitorSpec {
            pod_id: "abc123".into(),
            namespaces: NewNamespaces { net: true, ipc: true, uts: false, pid: true },
            cgroup_parent: parent.into(),
            ..Default::default()
        }
    }

    #[test]
    fn plan_computes_pins_and_cgroup_without_touching_anything() {
        let planned = port(CgroupDriver::Cgroupfs, false).plan(&spec("/kubepods/besteffort/podX")).unwrap();
        assert_eq!(planned.monitor, None);
        assert_eq!(planned.init, None);
        assert_eq!(planned.namespaces.net.as_deref(), Some("/run/crius/ns/net/abc123"));
        assert_eq!(planned.namespaces.ipc.as_deref(), Some("/run/crius/ns/ipc/abc123"));
        assert_eq!(planned.namespaces.uts, None);
        assert_eq!(planned.namespaces.pid.as_deref(), Some("/run/crius/ns/pid/abc123"));
        assert_eq!(planned.cgroup.as_deref(), Some("/kubepods/besteffort/podX/abc123"));
        assert!(!Path::new("/run/crius/ns/net/abc123").exists());
    }

    #[test]
    fn plan_without_cgroup_parent() {
        assert_eq!(port(CgroupDriver::Cgroupfs, false).plan(&spec("")).unwrap().cgroup, None);
    }

    #[test]
    fn plan_with_systemd_driver() {
        let planned = port(CgroupDriver::Systemd, true).plan(&spec("kubepods-besteffort-podX.slice")).unwrap();
        assert_eq!(
            planned.cgroup.as_deref(),
            Some("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podX.slice/crius-abc123.scope")
        );
    }

    #[test]
    fn plan_error_kinds() {
        let bad_parent = port(CgroupDriver::Cgroupfs, false).plan(&spec("/kubepods/../etc")).unwrap_err();
        assert_eq!(bad_parent.kind(), ErrorKind::InvalidArgument, "{bad_parent}");
        let relative = port(CgroupDriver::Cgroupfs, false).plan(&spec("kubepods")).unwrap_err();
        assert_eq!(relative.kind(), ErrorKind::InvalidArgument, "{relative}");
        let no_systemd = port(CgroupDriver::Systemd, false).plan(&spec("kubepods.slice")).unwrap_err();
        assert_eq!(no_systemd.kind(), ErrorKind::FailedPrecondition);
        assert!(no_systemd.to_string().contains("cgroupfs"), "{no_systemd}");
        let mut bad_id = spec("");
        bad_id.pod_id = "../x".into();
        assert_eq!(port(CgroupDriver::Cgroupfs, false).plan(&bad_id).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn recorded_pins_elsewhere_are_removed_only_with_the_right_shape() {
        let paths = PodPaths::new(Path::new("/run/crius"), None, "abc123").unwrap();
        let resources = PodResources {
            namespaces: crius_core::sandbox::model::NamespacePaths {
                net: Some("/old/run/ns/net/abc123".into()),
                ipc: Some("/etc/passwd".into()),
                uts: Some("/run/crius/ns/uts/abc123".into()),
                pid: None,
                net_alias: Some("/old/netns/crius-abc123".into()),
            },
            ..Default::default()
        };
        let pins = pins_to_remove(&paths, &resources);
        assert!(pins.contains(&PathBuf::from("/old/run/ns/net/abc123")));
        assert!(!pins.contains(&PathBuf::from("/etc/passwd")));
        assert!(pins.contains(&PathBuf::from("/old/netns/crius-abc123")));
        assert_eq!(pins.len(), 6);
    }

    #[test]
    fn start_with_a_missing_binary_is_internal() {
        let run_dir = tempfile::tempdir().unwrap();
        let port = MonitorPort::new(MonitorConfig::new("/nonexistent/crius", run_dir.path()));
        let err = port.start(&spec("")).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.to_string().contains("/nonexistent/crius"), "{err}");
    }

    #[test]
    fn refuses_to_remove_a_cgroup_not_named_for_the_pod() {
        let p = port(CgroupDriver::Cgroupfs, false);
        assert!(p.remove_cgroup("abc123", "/kubepods").unwrap_err().contains("refusing"));
    }
}
