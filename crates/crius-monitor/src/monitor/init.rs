//! The pod init: a tiny process in the pod's new namespaces that keeps them alive, prepares them
//! (hostname, `lo`, sysctls), and then only reaps zombies (it is PID 1 of the pod's PID
//! namespace) until it is killed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crius_core::ports::MonitorSpec;
use crius_sys::namespaces::{self, NamespaceSet};
use crius_sys::{fds, prctl, sysctl};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{MonitorError, Result, chain};
use crate::paths::namespace_set;

/// IPv6 duplicate address detection, turned off in a new netns unless asked for: it delays the
/// pod's addresses by seconds (kubernetes #54651).
const ACCEPT_DAD: [&str; 2] = ["net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"];

/// The report the init sends when its namespaces are ready.
const REPORT_OK: &str = "ok";

/// Creates the pod init in the namespaces `spec` asks for. Returns its pid and the read end of
/// the pipe on which it reports (see [`wait_report`]).
pub(crate) fn spawn(spec: &MonitorSpec) -> Result<(Pid, OwnedFd)> {
    let (report_read, report_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| MonitorError::io("creating the init's pipe", e.into()))?;
    let ns = namespace_set(&spec.namespaces);
    // The closure owns the write end: in the parent it is dropped (closed) when the call
    // returns, so the monitor sees end-of-file once the init has closed its copy.
    let pid = namespaces::spawn_in_namespaces(ns, move || init_main(report_write, spec, ns))
        .map_err(|e| MonitorError::sys("creating the pod init", e))?;
    Ok((pid, report_read))
}

/// Waits for the init's report: Ok once its namespaces are ready, or the error it met.
pub(crate) fn wait_report(report: OwnedFd, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut file = File::from(report);
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MonitorError::Init(format!("no report within {timeout:?}")));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(MonitorError::io("waiting for the pod init", e.into())),
        }
        let mut chunk = [0u8; 1024];
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(MonitorError::io("reading the pod init's report", e)),
        }
        if text.len() > 64 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    match text.trim_end() {
        REPORT_OK => Ok(()),
        "" => Err(MonitorError::Init("it exited before reporting".into())),
        other => Err(MonitorError::Init(other.strip_prefix("error ").unwrap_or(other).to_string())),
    }
}

/// The init's whole life. Runs in the cloned child: it must not return into the monitor's code,
/// and what it returns is its exit status.
fn init_main(report: OwnedFd, spec: &MonitorSpec, ns: NamespaceSet) -> i32 {
    // Dies with the monitor. If the monitor died before this line, the report below fails with
    // EPIPE (the monitor held the only read end), so the init cannot outlive it unnoticed.
    if prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return 1;
    }
    // Hold nothing inherited: stdio on /dev/null, every other descriptor but the report closed.
    let hygiene = fds::stdio_to_dev_null().and_then(|()| fds::close_all_except(&[report.as_raw_fd()]));
    let outcome = match hygiene {
        Ok(()) => prepare(spec, ns),
        Err(e) => Err(format!("closing inherited descriptors: {}", chain(&e))),
    };
    let message = match &outcome {
        Ok(()) => format!("{REPORT_OK}\n"),
        Err(e) => format!("error {e}\n"),
    };
    let mut report = File::from(report);
    if report.write_all(message.as_bytes()).is_err() || outcome.is_err() {
        return 1;
    }
    drop(report);
    reap_forever()
}

/// Sets up the new namespaces from inside them.
fn prepare(spec: &MonitorSpec, ns: NamespaceSet) -> Result<(), String> {
    if ns.uts
        && let Some(hostname) = &spec.hostname
    {
        namespaces::set_hostname(hostname).map_err(|e| format!("setting the hostname {hostname:?}: {}", chain(&e)))?;
    }
    if ns.net {
        namespaces::set_link_up("lo").map_err(|e| format!("bringing lo up: {}", chain(&e)))?;
        if !spec.ipv6_dad {
            for path in ACCEPT_DAD {
                match sysctl::write_sysctl(path, "0") {
                    Ok(()) => {}
                    // No IPv6 in this kernel (or disabled): nothing to turn off.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(format!("turning IPv6 DAD off: {}", chain(&e))),
                }
            }
        }
    }
    // Namespaced sysctls act on the writer's namespaces: this process's are the pod's.
    for (path, value) in &spec.sysctls {
        sysctl::write_sysctl(path, value).map_err(|e| format!("setting sysctl {path}={value}: {}", chain(&e)))?;
    }
    Ok(())
}

/// Blocks every signal and waits for the three it acts on: SIGCHLD (reap every exited child:
/// orphans of the pod's PID namespace land here), SIGTERM and SIGINT (exit, like the pause
/// container). SIGKILL needs no handling.
fn reap_forever() -> i32 {
    if SigSet::all().thread_set_mask().is_err() {
        return 1;
    }
    let mut wanted = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        wanted.add(signal);
    }
    loop {
        reap_all();
        if let Ok(Signal::SIGTERM | Signal::SIGINT) = wanted.wait() {
            return 0;
        }
    }
}

fn reap_all() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
