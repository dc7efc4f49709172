//! What the monitor has made for its pod, and the one teardown that undoes it (used when setup
//! fails, when the daemon never commits, on shutdown and on SIGTERM). Each step is idempotent
//! and forgets what it has undone, so running it twice is harmless.

use std::path::PathBuf;

use crius_sys::cgroups::CgroupLayout;
use crius_sys::mounts;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::containers::Containers;
use super::log::log;
use crate::error::chain;
use crate::paths::PodPaths;
use crate::protocol::InitExit;

pub(crate) struct InitState {
    pub pid: Pid,
    /// Set once the init has been reaped: its pid may then belong to someone else.
    pub exit: Option<InitExit>,
}

pub(crate) struct Pod {
    pub paths: PodPaths,
    pub init: Option<InitState>,
    /// Pins made (or being made): unmounted and deleted on teardown.
    pub pins: Vec<PathBuf>,
    pub cgroup: Option<(CgroupLayout, String)>,
    pub socket: Option<PathBuf>,
    pub containers: Containers,
}

impl Pod {
    pub fn new(paths: PodPaths, cgroup_root: PathBuf) -> Self {
        let containers = Containers::new(paths.containers.clone(), paths.exits.clone(), cgroup_root);
        Pod { paths, init: None, pins: Vec::new(), cgroup: None, socket: None, containers }
    }

    pub fn init_running(&self) -> bool {
        self.init.as_ref().is_some_and(|i| i.exit.is_none())
    }

    /// Reaps every exited child without blocking, recording the init's and the containers' ends.
    /// Other children (the runtime's helpers) are reaped silently.
    pub fn reap_children(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => self.record_exit(status),
            }
        }
    }

    fn record_exit(&mut self, status: WaitStatus) {
        let (pid, exit) = match status {
            WaitStatus::Exited(pid, code) => (pid, InitExit::Code(code)),
            WaitStatus::Signaled(pid, signal, _) => (pid, InitExit::Signal(signal as i32)),
            _ => return,
        };
        if let Some(init) = self.init.as_mut().filter(|i| i.pid == pid && i.exit.is_none()) {
            log!("pod init {pid} exited: {exit:?}");
            init.exit = Some(exit);
            return;
        }
        self.containers.on_exit(pid, status);
    }

    /// Kills the containers (recording their exits) and the init, unpins the namespaces, removes
    /// the cgroup and the socket. Goes on past a failure; returns every problem met.
    pub fn teardown(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        self.containers.kill_all();
        self.kill_init();
        self.pins.retain(|pin| match mounts::unmount_and_remove(pin) {
            Ok(()) => false,
            Err(e) => {
                problems.push(format!("unpinning {}: {}", pin.display(), chain(&e)));
                true
            }
        });
        if let Some((layout, path)) = &self.cgroup {
            match layout.remove(path) {
                Ok(()) => self.cgroup = None,
                Err(e) => problems.push(format!("removing cgroup {path}: {}", chain(&e))),
            }
        }
        if let Some(socket) = &self.socket {
            match std::fs::remove_file(socket) {
                Ok(()) => self.socket = None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.socket = None,
                Err(e) => problems.push(format!("removing {}: {e}", socket.display())),
            }
        }
        if problems.is_empty() {
            log!("pod {} torn down", self.paths.pod_id);
            Ok(())
        } else {
            let text = problems.join("; ");
            log!("pod {} teardown incomplete: {text}", self.paths.pod_id);
            Err(text)
        }
    }

    /// SIGKILL and wait. The init is this process's unreaped child, so its pid cannot have been
    /// reused: a plain kill is safe. When PID 1 of a PID namespace dies, the kernel kills every
    /// other process in it.
    fn kill_init(&mut self) {
        let Some(init) = self.init.as_mut().filter(|i| i.exit.is_none()) else {
            return;
        };
        let _ = kill(init.pid, Signal::SIGKILL);
        loop {
            match waitpid(init.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => break init.exit = Some(InitExit::Code(code)),
                Ok(WaitStatus::Signaled(_, signal, _)) => break init.exit = Some(InitExit::Signal(signal as i32)),
                Ok(_) | Err(Errno::EINTR) => continue,
                // ECHILD: already reaped.
                Err(_) => break init.exit = Some(InitExit::Signal(Signal::SIGKILL as i32)),
            }
        }
        // Other children (processes of the pod) may have died with it.
        self.reap_children();
    }
}
