//! Root integration tests of container supervision: real monitors (the crius-monitor-test
//! binary), runc with a root of each test's own, a busybox rootfs, containers joining the pod's
//! pinned namespaces in cgroups under the pod's. Each test cleans up after itself (containers
//! deleted from the runtime, cgroups, mounts, directories) even when it fails.

mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ctr::World;
use common::{Env, eventually};
use crius_core::ErrorKind;
use crius_core::ports::PodMonitor;
use crius_core::ports::container::{ContainerMonitor, ExitRecords, OciRuntime};
use crius_monitor::crilog;
use crius_sys::process;

const WAIT: Duration = Duration::from_secs(20);

/// (stream, partial, content) of each CRI log line; checks each timestamp.
fn parsed(lines: &[String]) -> Vec<(String, bool, String)> {
    lines
        .iter()
        .map(|line| {
            let (ts, stream, partial, content) =
                crilog::parse_line(line).unwrap_or_else(|| panic!("bad line {line:?}"));
            assert!(ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "timestamp {ts:?}");
            (stream.to_string(), partial, content.to_string())
        })
        .collect()
}

#[test]
fn exit_code_and_log_lines_in_order() {
    let env = Env::new("ctr-echo");
    let world = World::new(&env, "echo");
    // Sleeps between stream switches make the order across streams observable.
    let script =
        "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2; echo err2 >&2; sleep 0.2; printf tail; exit 3";
    let (spec, launch) = world.launch("echo", &["sh", "-c", script]);
    let created = world.create(&spec, &launch);
    assert!(env.port.is_alive(&created.init), "the container's init runs after create");
    world.start("echo");
    let exit = world.exit_of("echo", WAIT).expect("an exit record");
    assert_eq!((exit.exit_code, exit.signal, exit.oom_killed), (3, None, false), "{exit:?}");
    assert_eq!(exit.pid, created.init.pid);
    assert!(exit.finished_at_ns > 0);
    let lines = parsed(&world.log_lines("echo"));
    let expected: Vec<(String, bool, String)> = [
        ("stdout", false, "out1"),
        ("stderr", false, "err1"),
        ("stdout", false, "out2"),
        ("stderr", false, "err2"),
        ("stdout", true, "tail"),
    ]
    .iter()
    .map(|(s, p, c)| (s.to_string(), *p, c.to_string()))
    .collect();
    // out2 and err2 are written back to back: within that pair either order is right.
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[..2], expected[..2]);
    assert_eq!(lines[2..4].iter().collect::<BTreeSet<_>>(), expected[2..4].iter().collect::<BTreeSet<_>>());
    assert_eq!(lines[4], expected[4]);
    // The monitor forgot the exited container: its files are gone.
    let files = env.run_dir.join("pods").join(&world.pod_id).join("containers").join("echo");
    assert!(eventually(Duration::from_secs(5), || !files.exists()), "{} left", files.display());

    // The watcher delivers the record written before it watched, then new ones, once each.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    {
        let _entered = runtime.enter();
        env.port
            .exit_records()
            .watch(Box::new(move |exit| {
                let _ = tx.lock().unwrap().send(exit);
            }))
            .unwrap();
    }
    let first = rx.recv_timeout(WAIT).expect("the old record");
    assert_eq!(first, exit);
    let (spec, launch) = world.launch("second", &["true"]);
    let _second = world.create(&spec, &launch);
    world.start("second");
    let second = rx.recv_timeout(WAIT).expect("the new record");
    assert_eq!((second.container_id.as_str(), second.exit_code), ("second", 0));
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "a record was delivered twice");
    env.port.exit_records().remove("echo").unwrap();
    assert_eq!(env.port.exit_records().read("echo").unwrap(), None);
}

#[test]
fn sigterm_stops_a_sleeping_container() {
    let env = Env::new("ctr-term");
    let world = World::new(&env, "term");
    let (spec, launch) = world.launch("sleeper", &["sleep", "1000"]);
    let created = world.create(&spec, &launch);
    world.start("sleeper");
    assert!(!env.port.wait_exit(&created.init, Duration::from_millis(200)).unwrap(), "still running");
    assert!(env.port.signal(&created.init, libc::SIGTERM).unwrap());
    assert!(env.port.wait_exit(&created.init, WAIT).unwrap());
    let exit = world.exit_of("sleeper", WAIT).expect("an exit record");
    assert_eq!((exit.exit_code, exit.signal, exit.oom_killed), (143, Some(15), false), "{exit:?}");
    // Gone: a second signal reaches nobody.
    assert!(!env.port.signal(&created.init, libc::SIGKILL).unwrap());
    assert_eq!(env.port.signal(&created.init, 4242).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn oom_kill_is_detected() {
    let env = Env::new("ctr-oom");
    let world = World::new(&env, "oom");
    // busybox dd allocates its whole block at once and fills it: far over the limit.
    let (mut spec, launch) = world.launch("oom", &["dd", "if=/dev/zero", "of=/dev/null", "bs=512M", "count=1"]);
    spec.memory_limit = Some(48 << 20);
    let _created = world.create(&spec, &launch);
    world.start("oom");
    let exit = world.exit_of("oom", WAIT).expect("an exit record");
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)), "{exit:?}");
}

#[test]
fn reopen_log_loses_no_line() {
    let env = Env::new("ctr-rotate");
    let world = World::new(&env, "rotate");
    const N: usize = 4000;
    let script =
        format!("i=0; while [ $i -lt {N} ]; do echo line$i; i=$((i+1)); [ $((i % 20)) -eq 0 ] && usleep 5000; done");
    let (spec, launch) = world.launch("writer", &["sh", "-c", &script]);
    let _created = world.create(&spec, &launch);
    world.start("writer");
    let log = world.log_path("writer");
    let mut rotated = Vec::new();
    let deadline = Instant::now() + WAIT;
    while world.exit_of("writer", Duration::ZERO).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(40));
        let target = log.with_extension(format!("log.{}", rotated.len()));
        if std::fs::rename(&log, &target).is_ok() {
            rotated.push(target);
            if let Err(e) = env.port.reopen_log(&world.pod_id, "writer") {
                // Refused only because the writer has just finished (the monitor forgets an
                // exited container); its last lines went to the file just renamed.
                assert!(world.exit_of("writer", Duration::from_secs(2)).is_some(), "reopen_log: {e}");
                break;
            }
        }
    }
    let exit = world.exit_of("writer", WAIT).expect("an exit record");
    assert_eq!(exit.exit_code, 0);
    assert!(rotated.len() >= 3, "only {} rotations happened", rotated.len());
    let mut lines = Vec::new();
    for file in rotated.iter().chain([&log]) {
        lines.extend(std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string));
    }
    let contents: Vec<String> = parsed(&lines).into_iter().map(|(s, p, c)| format!("{s} {p} {c}")).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("stdout false line{i}")).collect();
    assert_eq!(contents.len(), expected.len(), "lines lost or doubled across {} rotations", rotated.len());
    assert_eq!(contents, expected);
    println!("{N} lines across {} rotations, none lost", rotated.len());
    // reopen_log of an unknown container is refused.
    let err = env.port.reopen_log(&world.pod_id, "nope").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// Whether a process with exactly this command line is alive (not a zombie).
fn running(cmdline: &[&str]) -> bool {
    let needle: Vec<u8> = cmdline.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == needle)
            && std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| !s.contains(") Z "))
    })
}

#[test]
fn exec_sync_output_exit_code_and_timeout() {
    let env = Env::new("ctr-exec");
    let world = World::new(&env, "exec");
    let (spec, launch) = world.launch("target", &["sleep", "1000"]);
    let _created = world.create(&spec, &launch);
    world.start("target");
    let s = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let out = world.oci.exec_sync(&world.runtime, "target", &s(&["echo", "hi"]), None).unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice(), out.timed_out),
        (0, &b"hi\n"[..], &b""[..], false)
    );
    let out = world.oci.exec_sync(&world.runtime, "target", &s(&["sh", "-c", "echo oops >&2; exit 5"]), None).unwrap();
    assert_eq!((out.exit_code, out.stderr.as_slice()), (5, &b"oops\n"[..]));

    // A unique duration names the sleeps, to find any left behind.
    let marker = format!("{}", 200_000 + std::process::id() % 100_000);
    let start = Instant::now();
    let cmd = s(&["sh", "-c", &format!("sleep {marker} & sleep {marker}")]);
    let out = world.oci.exec_sync(&world.runtime, "target", &cmd, Some(Duration::from_secs(1))).unwrap();
    let took = start.elapsed();
    assert!(out.timed_out, "{out:?}");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "returned after {took:?}");
    assert!(
        eventually(Duration::from_secs(5), || !running(&["sleep", &marker])),
        "a `sleep {marker}` of the timed-out exec is still running"
    );
    println!("exec_sync timeout of 1 s returned after {took:?}");

    let err = world.oci.exec_sync(&world.runtime, "missing", &s(&["true"]), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = world.oci.exec_sync(&world.runtime, "target", &s(&["/no/such/binary"]), None).unwrap_err();
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
}

#[test]
fn update_resources_changes_the_cgroup() {
    let env = Env::new("ctr-update");
    let world = World::new(&env, "update");
    let (spec, launch) = world.launch("upd", &["sleep", "1000"]);
    let _created = world.create(&spec, &launch);
    world.start("upd");
    let wanted =
        crius_core::ports::container::Resources { memory_limit_bytes: 64 << 20, cpu_shares: 256, ..Default::default() };
    let host = crius_core::spec::HostCaps::default();
    let resources = crius_core::spec::resources::cgroup_resources(&wanted, &host).expect("valid resources");
    world.oci.update_resources(&world.runtime, "upd", &resources).expect("update");
    let cgroup = launch.cgroup.unwrap();
    let layout = env.layout();
    let memory = layout.v1_hierarchy("memory").map(|h| h.mount_point.join(cgroup.trim_start_matches('/')));
    if let Some(dir) = memory {
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), (64u64 << 20).to_string());
    } else {
        let dir = layout.unified.unwrap().join(cgroup.trim_start_matches('/'));
        assert_eq!(std::fs::read_to_string(dir.join("memory.max")).unwrap().trim(), (64u64 << 20).to_string());
    }
}

#[test]
fn delete_is_idempotent() {
    let env = Env::new("ctr-delete");
    let world = World::new(&env, "delete");
    let (spec, launch) = world.launch("victim", &["sleep", "1000"]);
    let created = world.create(&spec, &launch);
    world.start("victim");
    world.oci.delete(&world.runtime, "victim").expect("delete a running container");
    let exit = world.exit_of("victim", WAIT).expect("the killed container's exit is recorded");
    assert_eq!(exit.signal, Some(9));
    assert!(!env.port.is_alive(&created.init));
    world.oci.delete(&world.runtime, "victim").expect("delete again");
    world.oci.delete(&world.runtime, "never-existed").expect("delete an unknown container");
    let err = world.oci.state(&world.runtime, "victim").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn create_failure_reports_the_runtime_message_and_leaves_nothing() {
    let env = Env::new("ctr-fail");
    let world = World::new(&env, "fail");
    let (spec, launch) = world.launch("bad", &["/no/such/binary"]);
    let (_ctr, result) = world.try_create(&spec, &launch);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    assert!(world.oci.state(&world.runtime, "bad").unwrap_err().is_not_found());
    // The monitor's files for it are gone.
    let files = env.run_dir.join("pods").join(&world.pod_id).join("containers").join("bad");
    assert!(!files.exists());
    // A duplicate id is refused while the first one lives.
    let (spec, launch) = world.launch("dup", &["sleep", "1000"]);
    let _dup = world.create(&spec, &launch);
    let (_ctr2, again) = world.try_create(&spec, &launch);
    assert!(again.unwrap_err().to_string().contains("already exists"));
}

#[test]
fn shutdown_kills_running_containers_and_records_their_exits() {
    let env = Env::new("ctr-shutdown");
    let world = World::new(&env, "shutdown");
    let (spec, launch) = world.launch("long", &["sleep", "1000"]);
    let created = world.create(&spec, &launch);
    world.start("long");
    let (spec, launch) = world.launch("created-only", &["sleep", "1000"]);
    let never_started = world.create(&spec, &launch);
    env.port.stop(&world.pod_id, &world.pod).expect("stopping the pod");
    let exit = world.exit_of("long", Duration::from_secs(1)).expect("an exit record written by the shutdown");
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert!(world.exit_of("created-only", Duration::from_secs(1)).is_some());
    assert!(!env.port.is_alive(&created.init) && !env.port.is_alive(&never_started.init));
    // The monitor deleted them from the runtime, so the pod's cgroup could go.
    assert!(world.oci.state(&world.runtime, "long").unwrap_err().is_not_found());
    for dir in env.layout().dirs(world.pod.cgroup.as_deref().unwrap()) {
        assert!(!dir.exists(), "{} left", dir.display());
    }
}

#[test]
fn tty_and_stdin_containers() {
    let env = Env::new("ctr-tty");
    let world = World::new(&env, "tty");
    let (mut spec, mut launch) = world.launch("tty", &["sh", "-c", "echo on-a-tty; [ -t 1 ] && echo is-a-tty"]);
    spec.terminal = true;
    launch.tty = true;
    let _tty = world.create(&spec, &launch);
    world.start("tty");
    assert_eq!(world.exit_of("tty", WAIT).expect("exit").exit_code, 0);
    let lines = parsed(&world.log_lines("tty"));
    // A terminal turns "\n" into "\r\n"; everything arrives on stdout.
    let contents: Vec<String> = lines.iter().map(|(s, p, c)| format!("{s} {p} {}", c.trim_end_matches('\r'))).collect();
    assert_eq!(contents, ["stdout false on-a-tty", "stdout false is-a-tty"]);

    let (spec, mut launch) = world.launch("stdin", &["sh", "-c", "readlink /proc/self/fd/0"]);
    launch.stdin = true;
    let _stdin = world.create(&spec, &launch);
    world.start("stdin");
    assert_eq!(world.exit_of("stdin", WAIT).expect("exit").exit_code, 0);
    let lines = parsed(&world.log_lines("stdin"));
    assert!(lines.len() == 1 && lines[0].2.starts_with("pipe:"), "{lines:?}");
}

/// Read `kB` fields of /proc/PID/smaps_rollup.
fn rollup_kb(pid: i32, field: &str) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    rollup
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {rollup}"))
}

#[test]
fn measure_create_start_time_and_monitor_memory() {
    let env = Env::new("ctr-measure");
    let world = World::new(&env, "measure");
    let mut times = Vec::new();
    let mut keep = Vec::new();
    for i in 0..3 {
        let id = format!("m{i}");
        let (spec, launch) = world.launch(&id, &["sleep", "1000"]);
        spec.write(std::path::Path::new(&launch.bundle), &world.rootfs).unwrap();
        let start = Instant::now();
        let (ctr, init) = world.try_create(&spec, &launch);
        let init = init.expect("create");
        world.start(&id);
        times.push(start.elapsed());
        keep.push((ctr, init));
    }
    // A trivial container that exits, for the create+start time alone (and each half).
    let (mut creates, mut starts) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let id = format!("t{i}");
        let (spec, launch) = world.launch(&id, &["true"]);
        spec.write(std::path::Path::new(&launch.bundle), &world.rootfs).unwrap();
        let start = Instant::now();
        let (_ctr, init) = world.try_create(&spec, &launch);
        init.expect("create");
        let created = start.elapsed();
        world.start(&id);
        times.push(start.elapsed());
        creates.push(created);
        starts.push(start.elapsed() - created);
        world.exit_of(&id, WAIT).expect("exit");
    }
    creates.sort();
    starts.sort();
    println!("MEASURE median create {:?}, median start {:?}", creates[creates.len() / 2], starts[starts.len() / 2]);
    let monitor = world.pod.monitor.unwrap();
    for (_, init) in &keep {
        assert!(process::is_alive(init.pid, init.start_time));
    }
    let (anon, pss_anon) = (rollup_kb(monitor.pid, "Anonymous:"), rollup_kb(monitor.pid, "Pss_Anon:"));
    let (private_clean, private_dirty) =
        (rollup_kb(monitor.pid, "Private_Clean:"), rollup_kb(monitor.pid, "Private_Dirty:"));
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "MEASURE runc create+start through the monitor: {:?} (min {:?}, median {:?}, max {:?})",
        times,
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    println!(
        "MEASURE monitor with 3 running containers: Anonymous {anon} kB, Pss_Anon {pss_anon} kB, \
         Private_Clean {private_clean} kB, Private_Dirty {private_dirty} kB"
    );
    assert!(anon < 1024, "the monitor's anonymous memory is {anon} kB");
}
