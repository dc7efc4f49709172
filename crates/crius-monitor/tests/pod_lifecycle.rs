//! Root integration tests: real monitors (the crius-monitor-test binary), real namespaces, mounts
//! and cgroups, each test in its own temp dirs and cgroup parent.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{Env, PodGuard, eventually, fs_type_at, inode, run, unique};
use crius_core::ErrorKind;
use crius_core::ports::PodMonitor;
use crius_core::sandbox::model::NewNamespaces;
use crius_monitor::protocol::{InitExit, Op};
use crius_monitor::{client, port::MonitorPort};
use crius_sys::process;

const KINDS: [&str; 4] = ["net", "ipc", "uts", "pid"];

fn pin(env: &Env, kind: &str, pod_id: &str) -> PathBuf {
    env.run_dir.join("ns").join(kind).join(pod_id)
}

fn nothing_left(env: &Env, port: &MonitorPort, pod_id: &str, resources: &crius_core::sandbox::model::PodResources) {
    for kind in KINDS {
        assert!(!pin(env, kind, pod_id).exists(), "{kind} pin left");
    }
    assert!(!env.netns_dir.join(format!("crius-{pod_id}")).exists(), "netns link left");
    let pins: Vec<_> = env
        .mounts_under_tmp()
        .into_iter()
        .filter(|m| m.ends_with(pod_id) || m.to_string_lossy().contains(pod_id))
        .collect();
    assert!(pins.is_empty(), "mounts left: {pins:?}");
    for p in [resources.monitor, resources.init].into_iter().flatten() {
        assert!(eventually(Duration::from_secs(5), || !port.is_alive(&p)), "process {} left", p.pid);
    }
    if let Some(cgroup) = &resources.cgroup {
        for dir in env.layout().dirs(cgroup) {
            assert!(!dir.exists(), "cgroup {} left", dir.display());
        }
    }
    assert!(!env.run_dir.join("pods").join(pod_id).join("monitor.sock").exists(), "socket left");
}

#[test]
fn full_pod_lifecycle() {
    let env = Env::new("life");
    let pod_id = unique("life");
    let spec = env.spec(&pod_id);
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let (resources, pending) = env.port.start(&spec).expect("start");
    let guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: resources.clone() };
    let monitor = resources.monitor.expect("monitor recorded");
    let init = resources.init.expect("init recorded");
    assert!(env.port.is_alive(&monitor) && env.port.is_alive(&init));
    assert_eq!(resources, {
        let mut r = env.port.plan(&spec).unwrap();
        r.monitor = Some(monitor);
        r.init = Some(init);
        r
    });

    // Pins: nsfs mounts of the init's namespaces, not the host's.
    for kind in KINDS {
        let pin = pin(&env, kind, &pod_id);
        assert_eq!(fs_type_at(&pin).as_deref(), Some("nsfs"), "{kind}");
        assert_eq!(inode(&pin), inode(format!("/proc/{}/ns/{kind}", init.pid)), "{kind}");
        assert_ne!(inode(&pin), inode(format!("/proc/self/ns/{kind}")), "{kind} is the host's");
    }
    let link = env.netns_dir.join(format!("crius-{pod_id}"));
    assert_eq!(inode(&link), inode(pin(&env, "net", &pod_id)));

    // Inside the namespaces.
    let uts = pin(&env, "uts", &pod_id);
    assert_eq!(run("nsenter", &[&format!("--uts={}", uts.display()), "hostname"]), spec.hostname.clone().unwrap());
    let net = format!("--net={}", pin(&env, "net", &pod_id).display());
    let lo = run("nsenter", &[&net, "ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains(",UP"), "lo is not up: {lo}");
    assert_eq!(run("nsenter", &[&net, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]), "80");
    if Path::new("/proc/sys/net/ipv6/conf/all/accept_dad").exists() {
        assert_eq!(run("nsenter", &[&net, "cat", "/proc/sys/net/ipv6/conf/all/accept_dad"]), "0");
    }
    let host_value = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_eq!(host_value, host_before, "the pod's sysctl leaked to the host");

    // The init: PID 1 of its PID namespace, holding nothing but /dev/null.
    let status = std::fs::read_to_string(format!("/proc/{}/status", init.pid)).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().collect::<Vec<_>>(), ["NSpid:", &init.pid.to_string(), "1"]);
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", init.pid)).unwrap().flatten().collect();
    for fd in &fds {
        assert_eq!(std::fs::read_link(fd.path()).unwrap(), Path::new("/dev/null"), "init holds {:?}", fd.path());
    }
    assert_eq!(fds.len(), 3);

    // The monitor leads a session of its own (the daemon's terminal or process group cannot
    // signal it) and is the subreaper of the pod's processes.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", monitor.pid)).unwrap();
    let after_comm: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
    assert_eq!(after_comm[3], monitor.pid.to_string(), "session id");

    // The cgroup, in every hierarchy.
    let cgroup = resources.cgroup.clone().expect("cgroup recorded");
    assert_eq!(cgroup, format!("{}/{pod_id}", env.cgroup_parent));
    let layout = env.layout();
    assert!(layout.v1_hierarchy("pids").is_some() || layout.unified.is_some());
    for dir in layout.dirs(&cgroup) {
        assert_eq!(crius_sys::cgroups::procs(&dir).unwrap(), [init.pid], "{}", dir.display());
    }

    // The socket, before and after commit, and from another port (a restarted daemon).
    let socket = env.run_dir.join("pods").join(&pod_id).join("monitor.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    pending.commit().expect("commit");
    let status = MonitorPort::new(env.port.config().clone()).status(&pod_id).unwrap();
    assert!(status.ok);
    assert_eq!(status.init_pid, Some(init.pid));
    assert_eq!(status.init_running, Some(true));

    // The monitor stays lean.
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", monitor.pid)).unwrap();
    let kb = |field: &str| -> u64 {
        rollup
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    // Anonymous memory is what the monitor costs per pod; its file pages are the binary's, shared
    // (and "dirty" for a while after cargo has just written the binary).
    println!("monitor memory: Anonymous {} kB, Pss_Anon {} kB", kb("Anonymous:"), kb("Pss_Anon:"));
    assert!(kb("Anonymous:") < 1024, "{rollup}");

    env.port.stop(&pod_id, &resources).expect("stop");
    nothing_left(&env, &env.port, &pod_id, &resources);
    env.port.stop(&pod_id, &resources).expect("stop again");
    drop(guard);
}

#[test]
fn drop_without_commit_undoes_everything() {
    let env = Env::new("drop");
    let pod_id = unique("drop");
    let (resources, pending) = env.port.start(&env.spec(&pod_id)).expect("start");
    let _guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: resources.clone() };
    assert_eq!(fs_type_at(&pin(&env, "net", &pod_id)).as_deref(), Some("nsfs"));
    drop(pending);
    // Drop waits for the monitor's own undo: no stop() here.
    nothing_left(&env, &env.port, &pod_id, &resources);
}

#[test]
fn killing_the_monitor_kills_the_init() {
    let env = Env::new("kill");
    let pod_id = unique("kill");
    let (resources, pending) = env.port.start(&env.spec(&pod_id)).expect("start");
    let _guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: resources.clone() };
    pending.commit().unwrap();
    let (monitor, init) = (resources.monitor.unwrap(), resources.init.unwrap());
    assert!(process::kill_verified(monitor.pid, monitor.start_time).unwrap());
    assert!(eventually(Duration::from_secs(5), || !env.port.is_alive(&init)), "the init outlived its monitor");
    // The pins outlive both (nobody undid them); stop() finishes the job.
    assert_eq!(fs_type_at(&pin(&env, "net", &pod_id)).as_deref(), Some("nsfs"));
    env.port.stop(&pod_id, &resources).expect("stop");
    nothing_left(&env, &env.port, &pod_id, &resources);
}

#[test]
fn init_exit_is_recorded_and_watched() {
    let env = Env::new("exit");
    let pod_id = unique("exit");
    let (resources, pending) = env.port.start(&env.spec(&pod_id)).expect("start");
    let _guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: resources.clone() };
    pending.commit().unwrap();
    let init = resources.init.unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (tx, rx) = mpsc::channel();
    let (tx2, rx2) = mpsc::channel();
    runtime.block_on(async {
        let tx = tx.clone();
        env.port.watch_exit(init, Box::new(move || tx.send("tokio").unwrap()));
        assert!(rx.try_recv().is_err(), "called back before the exit");
        // Without a runtime: a thread watches.
        std::thread::scope(|s| {
            s.spawn(|| {
                let tx2 = tx2.clone();
                env.port.watch_exit(init, Box::new(move || tx2.send("thread").unwrap()));
            });
        });
        assert!(process::kill_verified(init.pid, init.start_time).unwrap());
        for _ in 0..250 {
            if let Ok(who) = rx.try_recv() {
                assert_eq!(who, "tokio");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("watch_exit never called back on the runtime");
    });
    assert_eq!(rx2.recv_timeout(Duration::from_secs(5)).unwrap(), "thread");

    // The monitor records the exit and stays up until told to shut down.
    let socket = env.run_dir.join("pods").join(&pod_id).join("monitor.sock");
    assert!(eventually(Duration::from_secs(5), || {
        client::request(&socket, Op::Status, Duration::from_secs(2)).unwrap().init_running == Some(false)
    }));
    let status = client::request(&socket, Op::Status, Duration::from_secs(2)).unwrap();
    assert_eq!(status.init_exit, Some(InitExit::Signal(9)));
    assert!(env.port.is_alive(&resources.monitor.unwrap()));

    // Already gone: called back at once.
    let (tx3, rx3) = mpsc::channel();
    env.port.watch_exit(init, Box::new(move || tx3.send(()).unwrap()));
    rx3.try_recv().expect("immediate callback for a dead process");

    let reply = client::request(&socket, Op::Shutdown, Duration::from_secs(5)).unwrap();
    assert!(reply.ok, "{reply:?}");
    assert!(eventually(Duration::from_secs(5), || !env.port.is_alive(&resources.monitor.unwrap())));
    nothing_left(&env, &env.port, &pod_id, &resources);
}

#[test]
fn host_namespaces_make_no_pins_and_no_cgroup() {
    let env = Env::new("host");
    let pod_id = unique("host");
    let mut spec = env.spec(&pod_id);
    spec.namespaces = NewNamespaces::default();
    spec.hostname = None;
    spec.sysctls.clear();
    spec.cgroup_parent.clear();
    let (resources, pending) = env.port.start(&spec).expect("start");
    let _guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: resources.clone() };
    pending.commit().unwrap();
    assert_eq!(resources.namespaces, Default::default());
    assert_eq!(resources.cgroup, None);
    let init = resources.init.unwrap();
    for kind in KINDS {
        assert_eq!(inode(format!("/proc/{}/ns/{kind}", init.pid)), inode(format!("/proc/self/ns/{kind}")));
    }
    assert!(env.mounts_under_tmp().is_empty());
    env.port.stop(&pod_id, &resources).expect("stop");
    nothing_left(&env, &env.port, &pod_id, &resources);
}

#[test]
fn a_failing_sysctl_fails_the_start_and_leaves_nothing() {
    let env = Env::new("sysctl");
    let pod_id = unique("sysctl");
    let mut spec = env.spec(&pod_id);
    spec.sysctls.push(("net/ipv4/no_such_sysctl".into(), "1".into()));
    let err = env.port.start(&spec).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("net/ipv4/no_such_sysctl"), "{err}");
    let planned = env.port.plan(&spec).unwrap();
    nothing_left(&env, &env.port, &pod_id, &planned);
    // The monitor and its init are gone: no process runs with this pod id in its arguments.
    let needle = format!("--pod-id\0{pod_id}\0");
    let left = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .any(|cmdline| cmdline.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    assert!(eventually(Duration::from_secs(5), || !left()), "a process of the failed pod is left");
}

#[test]
fn unpinning_reaches_mount_namespaces_made_after_the_pin() {
    let env = Env::new("prop");
    let pod_id = unique("prop");
    let (resources, pending) = env.port.start(&env.spec(&pod_id)).expect("start");
    let _guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: resources.clone() };
    pending.commit().unwrap();
    // A mount namespace like runc makes for a container: a copy of the host's, rslave.
    let mut other = Command::new("unshare").args(["-m", "--propagation", "slave", "sleep", "30"]).spawn().unwrap();
    let other_pid = other.id();
    let own_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    // Until unshare(2) has run, the process still shows the host's mounts.
    let unshared = eventually(Duration::from_secs(5), || {
        std::fs::read_link(format!("/proc/{other_pid}/ns/mnt")).is_ok_and(|ns| ns != own_mnt)
    });
    let copy_has = |path: &Path| {
        std::fs::read_to_string(format!("/proc/{other_pid}/mountinfo"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(&*path.to_string_lossy()))
    };
    let net_pin = pin(&env, "net", &pod_id);
    let ipc_pin = pin(&env, "ipc", &pod_id);
    let checks = (|| {
        if !unshared {
            return Err("unshare never made its mount namespace".to_string());
        }
        if !copy_has(&net_pin) || !copy_has(&ipc_pin) {
            return Err("the copy does not have the pins".into());
        }
        // Unmounting alone (the file stays) must reach the copy: only propagation does that, and
        // / is private here, so it takes crius's shared <run_dir>/ns.
        crius_sys::mounts::unmount(&net_pin).unwrap();
        if !eventually(Duration::from_secs(2), || !copy_has(&net_pin)) {
            return Err("an unmount did not propagate into the other mount namespace".into());
        }
        env.port.stop(&pod_id, &resources).map_err(|e| e.to_string())?;
        let link = env.netns_dir.join(format!("crius-{pod_id}"));
        if !eventually(Duration::from_secs(2), || !copy_has(&ipc_pin) && !copy_has(&link)) {
            return Err("stop left pins in the other mount namespace".into());
        }
        Ok(())
    })();
    let _ = other.kill();
    let _ = other.wait();
    checks.unwrap();
}

#[test]
fn stop_of_an_unknown_pod_is_done() {
    let env = Env::new("unknown");
    let pod_id = unique("unknown");
    let planned = env.port.plan(&env.spec(&pod_id)).unwrap();
    env.port.stop(&pod_id, &planned).expect("stop of nothing");
}
