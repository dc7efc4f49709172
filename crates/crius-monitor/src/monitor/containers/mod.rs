//! The pod's containers as the monitor supervises them: created through the OCI runtime with
//! their stdio held here, their output written to CRI log files, their exits reaped and
//! recorded (with OOM kills) to `<run_dir>/exits/<id>`. Everything runs on the monitor's one
//! loop: the loop polls the descriptors [`Containers::pollable`] lists and calls back.

mod attach;
mod console;
mod launch;
mod logfile;
mod output;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crius_core::ports::container::{ContainerExit, ContainerLaunch, RuntimeHandler};
use crius_core::sandbox::model::ProcRef;
use crius_oci::argv::{Runtime, Subcommand};
use crius_sys::cgroup_oom;
use crius_sys::cgroups::CgroupLayout;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

pub(crate) use self::attach::Wants;
use self::attach::{Attachment, Input};
use self::logfile::LogFile;
use self::output::Output;
use super::log::log;
use crate::error::chain;
use crate::exits::record;
use crate::paths::validate_id;

/// How long `start` may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// After a container's exit, how long to wait for its pipes to reach end-of-file (its last
/// output is in them; processes left in a shared PID namespace may keep them open longer).
const DRAIN_WAIT: Duration = Duration::from_millis(100);
/// One read's worth of output.
const READ_BUFFER: usize = 32 * 1024;
/// How long the runtime's `delete` of a killed container may take at shutdown.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

/// A descriptor to poll, by what it is to the container with that serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Output stream `index` (stdout, stderr, or the pty).
    Output(u64, usize),
    /// The attach client with that serial.
    Attach(u64, u64),
    /// The container's stdin, while attach clients have bytes waiting for it.
    Stdin(u64),
}

struct Container {
    id: String,
    serial: u64,
    init: ProcRef,
    runtime: RuntimeHandler,
    /// The monitor's files for it: <pod>/containers/<id>.
    files: PathBuf,
    outputs: Vec<Output>,
    /// The write end of the stdin pipe (not for a terminal: its stdin is the pty); closed when
    /// the container exits, or when the first attach client's stdin ends with `stdin_once`.
    stdin: Option<OwnedFd>,
    /// Created with stdin open (CRI `stdin`), `stdin_once`, and a terminal.
    stdin_open: bool,
    stdin_once: bool,
    tty: bool,
    attached: Vec<Attachment>,
    log: Option<LogFile>,
    /// The cgroup's oom_kill counter file and its value at create.
    oom: Option<(PathBuf, u64)>,
    /// The container's cgroup (relative to each hierarchy), when it is a cgroupfs path.
    cgroup: Option<String>,
    exited: bool,
}

pub(crate) struct Containers {
    dir: PathBuf,
    exits: PathBuf,
    cgroup_root: PathBuf,
    /// Detected at the first container with a cgroup (None inside: detection failed).
    layout: Option<Option<CgroupLayout>>,
    list: Vec<Container>,
    /// Every container made here that the runtime may still know (exited ones included), to
    /// delete at shutdown; pruned once the runtime's state of one is gone (the daemon deleted it).
    made: Vec<(String, RuntimeHandler)>,
    next_serial: u64,
    next_attach: u64,
    buf: Vec<u8>,
    lines: Vec<u8>,
}

impl Containers {
    pub fn new(dir: PathBuf, exits: PathBuf, cgroup_root: PathBuf) -> Self {
        Containers {
            dir,
            exits,
            cgroup_root,
            layout: None,
            list: Vec::new(),
            made: Vec::new(),
            next_serial: 0,
            next_attach: 0,
            buf: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// `runtime create`; returns the container's init.
    pub fn create(&mut self, launch: &ContainerLaunch) -> Result<ProcRef, String> {
        validate_id("container", &launch.container_id).map_err(|e| e.to_string())?;
        if self.list.iter().any(|c| c.id == launch.container_id) {
            return Err(format!("container {} already exists in this pod", launch.container_id));
        }
        if launch.runtime.binary.is_empty() || !Path::new(&launch.bundle).is_absolute() {
            return Err(format!(
                "container {}: the runtime binary must be set and the bundle absolute (got {:?}, {:?})",
                launch.container_id, launch.runtime.binary, launch.bundle
            ));
        }
        // Open the log first: a path that cannot be written fails the create, not the output.
        let log = match &launch.log_path {
            Some(path) if !Path::new(path).is_absolute() => {
                return Err(format!("the log path {path:?} is not absolute"));
            }
            Some(path) => {
                Some(LogFile::open(Path::new(path)).map_err(|e| format!("opening the log file {path}: {e}"))?)
            }
            None => None,
        };
        self.made.retain(|(id, runtime)| Path::new(&runtime.root).join(id).exists());
        let files = self.dir.join(&launch.container_id);
        let launched = match launch::create(launch, &files) {
            Ok(launched) => launched,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&files);
                return Err(e);
            }
        };
        let oom = launch.cgroup.as_deref().and_then(|cgroup| self.oom_counter(cgroup));
        let init = ProcRef { pid: launched.pid, start_time: launched.start_time };
        self.next_serial += 1;
        self.made.push((launch.container_id.clone(), launch.runtime.clone()));
        self.list.push(Container {
            id: launch.container_id.clone(),
            serial: self.next_serial,
            init,
            runtime: launch.runtime.clone(),
            files,
            outputs: launched.outputs,
            stdin: launched.stdin,
            stdin_open: launch.stdin,
            stdin_once: launch.stdin_once,
            tty: launch.tty,
            attached: Vec::new(),
            log,
            oom,
            cgroup: launch.cgroup.clone(),
            exited: false,
        });
        log!("container {} created: pid {}", launch.container_id, init.pid);
        Ok(init)
    }

    pub fn start(&mut self, id: &str) -> Result<(), String> {
        let c = self.find(id)?;
        if c.exited {
            return Err(format!("container {id} has already exited"));
        }
        let runtime = Runtime::from_handler(&c.runtime);
        crius_oci::run::run(&runtime, &Subcommand::Start { id: id.to_string() }, START_TIMEOUT)
            .map(drop)
            .map_err(|e| chain(&e))
    }

    pub fn reopen_log(&mut self, id: &str) -> Result<(), String> {
        let c = self.list.iter_mut().find(|c| c.id == id).ok_or_else(|| unknown(id))?;
        match c.log.as_mut() {
            Some(log) => log.reopen().map_err(|e| format!("reopening the log of container {id}: {e}")),
            None => Err(format!("container {id} has no log file")),
        }
    }

    /// Every descriptor to poll, with what to poll it for: open outputs (read), attach clients
    /// (read their frames, write their output) and stdin that clients wait to write.
    pub fn pollable(&self) -> Vec<(Key, BorrowedFd<'_>, PollFlags)> {
        let mut fds = Vec::new();
        for c in &self.list {
            for (i, o) in c.outputs.iter().enumerate() {
                if let Some(fd) = o.fd() {
                    fds.push((Key::Output(c.serial, i), fd, PollFlags::POLLIN));
                }
            }
            for a in &c.attached {
                let mut flags = PollFlags::empty();
                flags.set(PollFlags::POLLIN, a.wants_input());
                flags.set(PollFlags::POLLOUT, a.wants_write());
                // Hang-ups are reported whatever is asked, so even a client with stdin waiting
                // is seen to leave.
                fds.push((Key::Attach(c.serial, a.serial), a.fd(), flags));
            }
            if c.attached.iter().any(Attachment::has_pending_stdin)
                && let Some(fd) = c.stdin_target()
            {
                fds.push((Key::Stdin(c.serial), fd, PollFlags::POLLOUT));
            }
        }
        fds
    }

    /// A polled descriptor is ready.
    pub fn on_ready(&mut self, key: Key, events: PollFlags) {
        let serial = match key {
            Key::Output(serial, _) | Key::Attach(serial, _) | Key::Stdin(serial) => serial,
        };
        let Some(index) = self.list.iter().position(|c| c.serial == serial) else { return };
        match key {
            Key::Output(_, output) => self.pump(index, Some(output)),
            Key::Attach(_, client) => self.on_attach_ready(index, client, events),
            Key::Stdin(_) => self.feed_stdin(index),
        }
        self.forget_if_done(index);
    }

    /// Whether a client may attach to `id` with `wants`.
    pub fn check_attach(&self, id: &str, wants: Wants) -> Result<(), String> {
        let c = self.find(id)?;
        if c.exited {
            return Err(format!("container {id} has exited: nothing to attach to"));
        }
        if wants.stdin && !c.stdin_open {
            return Err(format!("container {id} was not created with stdin open (stdin: true in its config)"));
        }
        Ok(())
    }

    /// Adds an attach client (checked with [`Containers::check_attach`]).
    pub fn attach(&mut self, id: &str, stream: UnixStream, wants: Wants) -> Result<(), String> {
        self.check_attach(id, wants)?;
        self.next_attach += 1;
        let serial = self.next_attach;
        let a = Attachment::new(serial, stream, wants).map_err(|e| format!("configuring the connection: {e}"))?;
        let c = self.list.iter_mut().find(|c| c.id == id).ok_or_else(|| unknown(id))?;
        c.attached.push(a);
        log!(
            "container {id}: attach client {serial} (stdin {}, stdout {}, stderr {})",
            wants.stdin,
            wants.stdout,
            wants.stderr
        );
        Ok(())
    }

    fn on_attach_ready(&mut self, index: usize, client: u64, events: PollFlags) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_BUFFER];
        }
        let c = &mut self.list[index];
        let Container { attached, outputs, stdin, tty, stdin_open, exited, .. } = c;
        let Some(a) = attached.iter_mut().find(|a| a.serial == client) else { return };
        if events.contains(PollFlags::POLLOUT) {
            a.flush();
        }
        let mut inputs = Vec::new();
        let hung_up = events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
        if hung_up || events.contains(PollFlags::POLLIN) {
            inputs = a.read_input(&mut self.buf, hung_up);
            inputs.extend(a.write_stdin(stdin_fd(*tty, *stdin_open && !*exited, outputs, stdin)));
        }
        c.apply(inputs);
        c.attached.retain(|a| !a.is_gone());
    }

    /// The container's stdin can take more: write what clients have waiting.
    fn feed_stdin(&mut self, index: usize) {
        let c = &mut self.list[index];
        let Container { attached, outputs, stdin, tty, stdin_open, exited, .. } = c;
        let mut inputs = Vec::new();
        for a in attached.iter_mut() {
            inputs.extend(a.write_stdin(stdin_fd(*tty, *stdin_open && !*exited, outputs, stdin)));
        }
        c.apply(inputs);
    }

    /// A child was reaped; false when it is not one of the containers (a runtime helper).
    pub fn on_exit(&mut self, pid: Pid, status: WaitStatus) -> bool {
        let Some(index) = self.list.iter().position(|c| !c.exited && c.init.pid == pid.as_raw()) else {
            return false;
        };
        let (exit_code, signal) = match status {
            WaitStatus::Exited(_, code) => (code, None),
            WaitStatus::Signaled(_, signal, _) => (128 + signal as i32, Some(signal as i32)),
            _ => return true,
        };
        let finished_at_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        // As containerd's shim: once the init is gone nothing of the container may run on. In a
        // pod that shares one PID namespace (the CRI default) the kernel does not kill the
        // init's orphans, so they would run on (holding ports, memory) until the container is
        // removed. It also ends the pipes they hold, so the drain below finishes at once.
        if let Some(cgroup) = self.list[index].cgroup.clone() {
            self.kill_leftovers(&self.list[index].id.clone(), &cgroup);
        }
        self.drain_after_exit(index);
        let c = &mut self.list[index];
        let oom_killed = c
            .oom
            .as_ref()
            .is_some_and(|(file, before)| cgroup_oom::read_oom_kills(file).is_ok_and(|now| now > *before));
        let exit = ContainerExit {
            container_id: c.id.clone(),
            pid: c.init.pid,
            exit_code,
            signal,
            finished_at_ns,
            oom_killed,
            message: String::new(),
        };
        match record::write(&self.exits, &exit) {
            Ok(_) => log!("container {} exited: code {exit_code}, signal {signal:?}, oom {oom_killed}", c.id),
            Err(e) => log!("container {} exited (code {exit_code}) but its exit record failed: {e}", c.id),
        }
        c.exited = true;
        c.stdin = None;
        self.forget_if_done(index);
        true
    }

    /// SIGKILLs every running container, records its exit, and deletes it from the runtime
    /// (its cgroup, inside the pod's, must go before the pod's can). Each init is this process's
    /// unreaped child, so its pid is still its own.
    pub fn kill_all(&mut self) {
        let running: Vec<i32> = self.list.iter().filter(|c| !c.exited).map(|c| c.init.pid).collect();
        for &pid in &running {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for pid in running {
            let pid = Pid::from_raw(pid);
            let status = loop {
                match waitpid(pid, None) {
                    Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break status,
                    Ok(_) | Err(Errno::EINTR) => continue,
                    // Reaped already (cannot happen: only this loop and the SIGCHLD handler reap).
                    Err(_) => break WaitStatus::Signaled(pid, Signal::SIGKILL, false),
                }
            };
            self.on_exit(pid, status);
        }
        for (id, runtime) in self.made.drain(..) {
            if !Path::new(&runtime.root).join(&id).exists() {
                continue;
            }
            let delete = Subcommand::Delete { id: id.clone(), force: true };
            match crius_oci::run::run(&Runtime::from_handler(&runtime), &delete, DELETE_TIMEOUT) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => log!("deleting container {id} from the runtime: {}", chain(&e)),
            }
        }
        // What is left holds pipes open in other processes: stop reading.
        for c in self.list.drain(..) {
            let _ = std::fs::remove_dir_all(&c.files);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }

    fn find(&self, id: &str) -> Result<&Container, String> {
        self.list.iter().find(|c| c.id == id).ok_or_else(|| unknown(id))
    }

    /// Reads output (one stream, or all) into the log.
    fn pump(&mut self, index: usize, only: Option<usize>) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_BUFFER];
        }
        let c = &mut self.list[index];
        for (i, output) in c.outputs.iter_mut().enumerate() {
            if only.is_none_or(|o| o == i) {
                let stream = output.stream();
                let attached = &mut c.attached;
                output.pump(&mut self.buf, &mut self.lines, |data| {
                    for a in attached.iter_mut() {
                        a.send_output(stream, data);
                    }
                });
            }
        }
        c.attached.retain(|a| !a.is_gone());
        if let Some(log) = c.log.as_mut() {
            log.write(&self.lines);
        }
        self.lines.clear();
        // A burst of output grew the lines buffer: give the memory back.
        self.lines.shrink_to(READ_BUFFER);
    }

    /// The container's last output is in its pipes: read it, waiting briefly for end-of-file.
    fn drain_after_exit(&mut self, index: usize) {
        let deadline = Instant::now() + DRAIN_WAIT;
        loop {
            self.pump(index, None);
            let left = deadline.saturating_duration_since(Instant::now());
            let c = &self.list[index];
            let mut fds: Vec<PollFd<'_>> =
                c.outputs.iter().filter_map(|o| o.fd()).map(|fd| PollFd::new(fd, PollFlags::POLLIN)).collect();
            if fds.is_empty() || left.is_zero() {
                return;
            }
            let ms = u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// An exited container whose streams have all ended is done: forget it and its files.
    fn forget_if_done(&mut self, index: usize) {
        let c = &self.list[index];
        if c.exited && c.outputs.iter().all(|o| !o.is_open()) {
            let c = self.list.swap_remove(index);
            // Closing the connections ends the clients' sessions, after the last output.
            for a in c.attached {
                a.finish();
            }
            let _ = std::fs::remove_dir_all(&c.files);
        }
    }

    /// The cgroup hierarchies, detected once (None: detection failed, said once in the log).
    fn layout(&mut self) -> Option<&CgroupLayout> {
        let root = &self.cgroup_root;
        self.layout
            .get_or_insert_with(|| match CgroupLayout::detect(root) {
                Ok(layout) => Some(layout),
                Err(e) => {
                    log!(
                        "no cgroup layout under {}: {}; OOM kills will not be detected and the processes \
                         a container's init leaves behind will not be killed",
                        root.display(),
                        chain(&e)
                    );
                    None
                }
            })
            .as_ref()
    }

    /// SIGKILLs every process still in the cgroup of a container whose init has exited. Each
    /// pid is signalled through a pidfd opened while it is still listed in the cgroup, so a pid
    /// reused meanwhile is never hit. A few rounds, for processes forked during the first.
    fn kill_leftovers(&mut self, id: &str, cgroup: &str) {
        const ROUNDS: usize = 5;
        let Some(layout) = self.layout() else { return };
        // Every process of the container is in its cgroup of every hierarchy: one is enough.
        let Some(dir) = layout.dirs(cgroup).into_iter().find(|d| d.join("cgroup.procs").is_file()) else {
            return;
        };
        let mut killed = std::collections::BTreeSet::new();
        for _ in 0..ROUNDS {
            let Ok(pids) = crius_sys::cgroups::procs(&dir) else { return };
            if pids.is_empty() {
                break;
            }
            let pidfds: Vec<_> = pids
                .into_iter()
                .filter_map(|pid| crius_sys::process::Pidfd::open(pid).ok().map(|fd| (pid, fd)))
                .collect();
            // Still listed once the pidfds are held: each pidfd is the cgroup's process.
            let Ok(listed) = crius_sys::cgroups::procs(&dir) else { return };
            for (pid, pidfd) in pidfds.iter().filter(|(pid, _)| listed.contains(pid)) {
                if pidfd.send_signal(Signal::SIGKILL).unwrap_or(false) {
                    killed.insert(*pid);
                }
            }
        }
        if !killed.is_empty() {
            log!("container {id}: killed what its init left behind: pids {killed:?}");
        }
    }

    fn oom_counter(&mut self, cgroup: &str) -> Option<(PathBuf, u64)> {
        let layout = self.layout()?;
        let file = cgroup_oom::oom_counter_file(layout, cgroup)?;
        match cgroup_oom::read_oom_kills(&file) {
            Ok(count) => Some((file, count)),
            Err(e) => {
                log!("cannot read {}: {}; OOM kills will not be detected", file.display(), chain(&e));
                None
            }
        }
    }
}

impl Container {
    fn stdin_target(&self) -> Option<BorrowedFd<'_>> {
        stdin_fd(self.tty, self.stdin_open && !self.exited, &self.outputs, &self.stdin)
    }

    fn apply(&mut self, inputs: Vec<Input>) {
        for input in inputs {
            match input {
                Input::StdinClosed if self.stdin_once && !self.tty => {
                    if self.stdin.take().is_some() {
                        log!(
                            "container {}: its stdin is closed (stdin_once, the attach client's stdin ended)",
                            self.id
                        );
                    }
                }
                Input::StdinClosed => {}
                Input::Resize(width, height) => self.resize(width, height),
            }
        }
    }

    fn resize(&self, width: u16, height: u16) {
        let Some(master) = self.outputs.first().and_then(Output::fd).filter(|_| self.tty) else { return };
        let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
        if let Err(e) = rustix::termios::tcsetwinsize(master, size) {
            log!("container {}: resizing its terminal to {width}x{height}: {e}", self.id);
        }
    }
}

/// Where attach clients' stdin goes: the pipe, or the pty of a terminal opened with stdin. A
/// function of the fields, so the attach list can be borrowed beside them.
fn stdin_fd<'a>(tty: bool, open: bool, outputs: &'a [Output], pipe: &'a Option<OwnedFd>) -> Option<BorrowedFd<'a>> {
    match tty {
        true if open => outputs.first().and_then(Output::fd),
        true => None,
        false => pipe.as_ref().map(|fd| fd.as_fd()),
    }
}

fn unknown(id: &str) -> String {
    format!("container {id} is not running in this pod")
}

/// The containers' descriptors, for the loop's poll.
pub(crate) fn poll_fds<'a>(pollable: &'a [(Key, BorrowedFd<'a>, PollFlags)]) -> impl Iterator<Item = PollFd<'a>> + 'a {
    pollable.iter().map(|(_, fd, flags)| PollFd::new(*fd, *flags))
}
