//! The monitor's setup, step by step. Each step records what it makes in the `Pod` *before*
//! making it, so the caller's teardown undoes a half-done step too.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use crius_core::ports::MonitorSpec;
use crius_core::sandbox::model::{PodResources, ProcRef};
use crius_sys::cgroups::{self, CgroupLayout};
use crius_sys::namespaces::{NsKind, proc_ns_path};
use crius_sys::{mounts, process};
use nix::sys::stat::{Mode, umask};

use super::init;
use super::pod::{InitState, Pod};
use crate::args::MonitorArgs;
use crate::error::{MonitorError, Result};
use crate::paths::namespace_set;

/// How long the pod init may take to prepare its namespaces.
const INIT_REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes everything for the pod; returns the listening socket and what to report.
pub(crate) fn set_up(args: &MonitorArgs, spec: &MonitorSpec, pod: &mut Pod) -> Result<(UnixListener, PodResources)> {
    let init = start_init(spec, pod)?;
    pin_namespaces(spec, pod, init.pid)?;
    let cgroup = place_in_cgroup(args, spec, pod, init.pid)?;
    let listener = bind_socket(pod)?;
    let me = std::process::id() as i32;
    let monitor = process::proc_start_time(me)
        .map(|start_time| ProcRef { pid: me, start_time })
        .ok_or_else(|| MonitorError::Init("cannot read the monitor's own start time".into()))?;
    let resources = PodResources {
        monitor: Some(monitor),
        init: Some(init),
        namespaces: pod.paths.namespace_paths(namespace_set(&spec.namespaces)),
        cgroup,
    };
    Ok((listener, resources))
}

fn start_init(spec: &MonitorSpec, pod: &mut Pod) -> Result<ProcRef> {
    let (pid, report) = init::spawn(spec)?;
    // Its start time is readable even if it has already exited: it stays unreaped until the
    // monitor waits for it.
    let start_time = process::proc_start_time(pid.as_raw()).unwrap_or_default();
    pod.init = Some(InitState { pid, exit: None });
    init::wait_report(report, INIT_REPORT_TIMEOUT)?;
    Ok(ProcRef { pid: pid.as_raw(), start_time })
}

fn pin_namespaces(spec: &MonitorSpec, pod: &mut Pod, init_pid: i32) -> Result<()> {
    let ns = namespace_set(&spec.namespaces);
    if ns.kinds().next().is_none() {
        return Ok(());
    }
    make_shared(&pod.paths.ns_root)?;
    for kind in ns.kinds() {
        let pin = pod.paths.pin(kind);
        pin_one(pod, init_pid, kind, &pin)?;
    }
    if ns.net
        && let Some(link) = pod.paths.netns_link.clone()
        && let Some(dir) = link.parent()
    {
        make_shared(dir)?;
        pin_one(pod, init_pid, NsKind::Net, &link)?;
    }
    Ok(())
}

fn make_shared(dir: &Path) -> Result<()> {
    mounts::make_shared_mount_dir(dir)
        .map_err(|e| MonitorError::sys(format!("making {} a shared mount point", dir.display()), e))
}

fn pin_one(pod: &mut Pod, init_pid: i32, kind: NsKind, pin: &Path) -> Result<()> {
    pod.pins.push(pin.to_path_buf());
    mounts::bind_mount_file(&proc_ns_path(init_pid, kind), pin)
        .map_err(|e| MonitorError::sys(format!("pinning the {} namespace at {}", kind.name(), pin.display()), e))
}

fn place_in_cgroup(args: &MonitorArgs, spec: &MonitorSpec, pod: &mut Pod, init_pid: i32) -> Result<Option<String>> {
    if spec.cgroup_parent.is_empty() {
        return Ok(None);
    }
    let path = cgroups::cgroup_path(args.cgroup_driver, &spec.cgroup_parent, &spec.pod_id, cgroups::systemd_running())
        .map_err(|e| MonitorError::sys("the pod's cgroup", e))?;
    let layout = CgroupLayout::detect(&args.cgroup_root).map_err(|e| {
        MonitorError::sys(format!("finding the cgroup hierarchies under {}", args.cgroup_root.display()), e)
    })?;
    pod.cgroup = Some((layout.clone(), path.clone()));
    layout.create(&path).map_err(|e| MonitorError::sys(format!("creating cgroup {path}"), e))?;
    layout
        .add_process(&path, init_pid)
        .map_err(|e| MonitorError::sys(format!("moving the pod init into cgroup {path}"), e))?;
    Ok(Some(path))
}

fn bind_socket(pod: &mut Pod) -> Result<UnixListener> {
    let socket = pod.paths.socket.clone();
    std::fs::create_dir_all(&pod.paths.pod_dir)
        .map_err(|e| MonitorError::io(format!("creating {}", pod.paths.pod_dir.display()), e))?;
    // A socket file left by a monitor that was killed: nobody listens on it any more.
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(MonitorError::io(format!("removing the stale socket {}", socket.display()), e)),
    }
    pod.socket = Some(socket.clone());
    // Mode 0600 from the start (no window with a wider mode): the monitor is single-threaded, so
    // the process-wide umask change affects nothing else.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = crius_sys::unix_path::SocketPath::new(&socket)
        .map_err(|e| MonitorError::sys("preparing the socket path", e))
        .and_then(|short| {
            UnixListener::bind(short.path())
                .map_err(|e| MonitorError::io(format!("listening on {}", socket.display()), e))
        });
    umask(old);
    let listener = bound?;
    listener.set_nonblocking(true).map_err(|e| MonitorError::io(format!("configuring {}", socket.display()), e))?;
    Ok(listener)
}
