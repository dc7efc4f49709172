//! Root integration tests of the driver against the real runtimes: runc's whole container
//! life through the typed argv (create, start, state, kill, delete), and crun where this host
//! lets it run (Debian's crun 1.8.1 refuses this machine's hybrid cgroup layout: the test says
//! so loudly instead of passing in silence).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crius_oci::argv::{Create, Runtime, Subcommand};
use crius_oci::output::{ContainerStatus, error_message, parse_state};
use crius_oci::run::run;
use crius_oci::testing::{BundleSpec, busybox_rootfs};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(30);

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Deletes the container from the runtime when dropped, whatever happened.
struct Guard<'a> {
    runtime: &'a Runtime,
    id: &'a str,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = run(self.runtime, &Subcommand::Delete { id: self.id.to_string(), force: true }, TIMEOUT);
    }
}

/// A bundle with new namespaces and no cgroup settings, in `dir`.
fn bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs).expect("building the busybox rootfs (apt-get install busybox-static)");
    let bundle = dir.join("bundle");
    BundleSpec::new(args).write(&bundle, &rootfs).unwrap();
    bundle
}

/// The whole life of a container through the driver. The test process becomes a subreaper so
/// the container's init (orphaned when `create` returns) is its child to reap.
fn container_life(binary: &Path) {
    crius_sys::prctl::set_child_subreaper().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(binary, dir.path().join("root"));
    let id = format!("life-{}", std::process::id());
    let _guard = Guard { runtime: &runtime, id: &id };
    let bundle = bundle(dir.path(), &["sleep", "1000"]);
    let pid_file = dir.path().join("pid");
    let create = Subcommand::Create(Create {
        id: id.clone(),
        bundle,
        pid_file: pid_file.clone(),
        console_socket: None,
        no_pivot: false,
    });
    run(&runtime, &create, TIMEOUT).expect("create");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let state = parse_state(&run(&runtime, &Subcommand::State { id: id.clone() }, TIMEOUT).unwrap()).unwrap();
    assert_eq!((state.status, state.pid, state.id.as_str()), (ContainerStatus::Created, pid, id.as_str()));
    run(&runtime, &Subcommand::Start { id: id.clone() }, TIMEOUT).expect("start");
    let state = parse_state(&run(&runtime, &Subcommand::State { id: id.clone() }, TIMEOUT).unwrap()).unwrap();
    assert_eq!(state.status, ContainerStatus::Running);
    run(&runtime, &Subcommand::Kill { id: id.clone(), signal: 9, all: false }, TIMEOUT).expect("kill");
    // The init is this process's child now (subreaper): reap it.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Signaled(_, signal, _)) => break assert_eq!(signal as i32, 9),
            Ok(other) => panic!("unexpected wait status {other:?}"),
            Err(nix::errno::Errno::EINTR) if Instant::now() < deadline => {}
            Err(e) => panic!("waiting for the container's init: {e}"),
        }
    }
    let state = parse_state(&run(&runtime, &Subcommand::State { id: id.clone() }, TIMEOUT).unwrap()).unwrap();
    assert_eq!(state.status, ContainerStatus::Stopped);
    run(&runtime, &Subcommand::Delete { id: id.clone(), force: false }, TIMEOUT).expect("delete");
    let err = run(&runtime, &Subcommand::State { id: id.clone() }, TIMEOUT).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // Deleting what is not there: runc 1.1 exits 0 with --force, older ones say "does not exist".
    match run(&runtime, &Subcommand::Delete { id: id.clone(), force: true }, TIMEOUT) {
        Ok(_) => {}
        Err(e) => assert!(e.is_not_found(), "{e}"),
    }
    let err = run(&runtime, &Subcommand::Kill { id: id.clone(), signal: 9, all: false }, TIMEOUT).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn runc_container_life() {
    let runc = which("runc").expect("runc is not installed (apt-get install runc)");
    container_life(&runc);
}

/// Why crun cannot run a trivial container here, or None when it can.
fn crun_unavailable(crun: &Path) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path(), &["sh", "-c", "echo crun-works; exit 3"]);
    let runtime = Runtime::new(crun, dir.path().join("root"));
    let id = format!("probe-{}", std::process::id());
    let _guard = Guard { runtime: &runtime, id: &id };
    let mut command = std::process::Command::new(crun);
    command.arg(format!("--root={}", runtime.root.display())).args(["run", "--bundle"]).arg(&bundle).arg(&id);
    let out = command.stdin(Stdio::null()).output().expect("running crun");
    if out.status.code() == Some(3) && String::from_utf8_lossy(&out.stdout).contains("crun-works") {
        return None;
    }
    let message = error_message(b"", &out.stderr);
    Some(format!("crun run exited with {}: {}", out.status, if message.is_empty() { "no message" } else { &message }))
}

#[test]
fn crun_container_life_where_crun_works() {
    let Some(crun) = which("crun") else {
        println!("CRUN UNAVAILABLE ON THIS HOST: crun is not installed (apt-get install crun)");
        eprintln!("CRUN UNAVAILABLE ON THIS HOST: crun is not installed (apt-get install crun)");
        return;
    };
    if let Some(reason) = crun_unavailable(&crun) {
        // Loud on both streams: the harness shows stdout of passing tests only with
        // --nocapture, stderr always with nextest's failure output and in CI logs.
        println!("CRUN UNAVAILABLE ON THIS HOST: {reason}");
        eprintln!("CRUN UNAVAILABLE ON THIS HOST: {reason}");
        return;
    }
    container_life(&crun);
}
