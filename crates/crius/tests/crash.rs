//! Crash safety against a real daemon (run as root): an abort at every step of RunPodSandbox,
//! a crash inside StopPodSandbox, kill -9 of a daemon with a running pod, a killed monitor, and a
//! node reboot. After each, a
//! restarted daemon must have cleaned up everything, or still serve the pod as it was.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crius_testkit::cri::PodSandboxState;
use crius_testkit::{CRASH_ENV, PodConfigExt, TEARDOWN_CRASH_STEP, TestDaemon, host, pod_config, run_request};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_crius");

async fn daemon() -> TestDaemon {
    match TestDaemon::start(BIN).await {
        Ok(td) => td,
        Err(e) => panic!("the daemon did not start: {e}"),
    }
}

async fn restart(td: &mut TestDaemon) {
    if let Err(e) = td.restart().await {
        panic!("the daemon did not come back: {e}");
    }
}

async fn run(td: &TestDaemon, cfg: crius_testkit::cri::PodSandboxConfig) -> String {
    match td.run_pod(cfg).await {
        Ok(id) => id,
        Err(s) => panic!("RunPodSandbox failed: {:?}: {}\n{}", s.code(), s.message(), td.log_tail(60)),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the daemon holds it from then on).
fn free_port() -> i32 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    i32::from(listener.local_addr().expect("local addr").port())
}

/// A pod that goes through every step: its own bridge network and a host port.
fn full_pod(name: &str) -> crius_testkit::cri::PodSandboxConfig {
    pod_config(name)
        .sysctl("net.ipv4.ip_unprivileged_port_start", "80")
        .dns(&["127.0.0.53"], &["cluster.local"], &["ndots:5"])
        .port_mapping(80, free_port())
}

/// The daemon aborts right before `step` of RunPodSandbox; the restarted daemon must have undone
/// whatever the step before it made, and the pod's name must be free again.
async fn crash_at(step: &str) {
    let mut td = match TestDaemon::builder().bridge_network().start_with_env(BIN, &[(CRASH_ENV, step)]).await {
        Ok(td) => td,
        Err(e) => panic!("the daemon did not start: {e}"),
    };
    let cfg = full_pod(&format!("crash-{}", step.replace('_', "-")));
    let parent = td.cgroup_parent();
    let cfg = cfg.cgroup_parent(&parent);

    let res = td.runtime().run_pod_sandbox(run_request(cfg.clone())).await;
    if let Ok(r) = &res {
        td.track_pod(&r.get_ref().pod_sandbox_id);
    }
    assert!(res.is_err(), "RunPodSandbox succeeded although the daemon was to crash at {step}: {res:?}");
    let status = td
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the daemon still runs after the crash at {step}"));
    // The contract says abort (SIGABRT); a daemon that kills itself with SIGKILL (exactly like
    // `kill -9`) is as good.
    assert!(
        matches!(status.signal(), Some(libc::SIGABRT) | Some(libc::SIGKILL)),
        "the daemon should have crashed at {step}, it ended with {status}\n{}",
        td.log_tail(40)
    );

    restart(&mut td).await;
    let pods = td.list_pods(None).await.expect("list");
    assert!(pods.is_empty(), "a pod survived the crash at {step}: {pods:?}");
    td.assert_no_leaks().await;

    // The name is free again, and the pod works.
    let id = run(&td, cfg).await;
    assert_eq!(td.pod_state(&id).await.expect("status"), PodSandboxState::SandboxReady);
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

macro_rules! crash_tests {
    ($($name:ident => $step:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                crash_at($step).await;
            }
        )*

        /// The steps a real pod goes through (from its start timeline) are exactly the ones
        /// tested above.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_crash_step_has_a_test() {
            let ours: Vec<&str> = vec![$($step),*];
            assert_eq!(ours, crius_testkit::CRASH_STEPS);
            let td = match TestDaemon::builder().bridge_network().start(BIN).await {
                Ok(td) => td,
                Err(e) => panic!("the daemon did not start: {e}"),
            };
            let id = run(&td, full_pod("all-steps")).await;
            let info = td.pod_info(&id).await.expect("info");
            let steps: Vec<String> = info.raw["timeline"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["step"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            assert_eq!(steps, ours, "the pod's start timeline");
            td.remove_pod(&id).await.expect("remove");
            td.assert_no_leaks().await;
        }
    };
}

crash_tests! {
    crash_before_reserve => "reserve",
    crash_before_plan => "plan",
    crash_before_state_creating => "state_creating",
    crash_before_files => "files",
    crash_before_shm => "shm",
    crash_before_monitor_start => "monitor_start",
    crash_before_monitor_recorded => "monitor_recorded",
    crash_before_monitor_commit => "monitor_commit",
    crash_before_network_setup => "network_setup",
    crash_before_network_recorded => "network_recorded",
    crash_before_hosts => "hosts",
    crash_before_host_ports => "host_ports",
    crash_before_state_ready => "state_ready",
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_daemon_keeps_the_pod_ready() {
    let mut td = daemon().await;
    let cfg = pod_config("survivor").label("app", "survivor");
    let id = run(&td, cfg.clone()).await;
    let before = td.pod_status(&id).await.expect("status").status;
    let info = td.pod_info(&id).await.expect("info");
    let (init, monitor) = (info.init_pid(), info.monitor());
    let init_start = host::proc_stat(init).unwrap().start_time;
    let monitor_start = host::proc_stat(monitor).unwrap().start_time;

    td.kill9();
    assert!(host::process_alive(monitor, Some(monitor_start)), "the monitor died with the daemon");
    assert!(host::process_alive(init, Some(init_start)), "the pod init died with the daemon");

    restart(&mut td).await;
    let after = td.pod_status(&id).await.expect("status after restart").status;
    assert_eq!(after, before, "the pod's status changed across kill -9");
    let info_after = td.pod_info(&id).await.expect("info after restart");
    assert_eq!(info_after.pid, Some(init));
    assert_eq!(info_after.monitor_pid, Some(monitor));
    assert_eq!(info_after.namespaces, info.namespaces);
    let pods = td.list_pods(None).await.expect("list");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32);

    // The name is still held by the pod.
    let err = td.run_pod(cfg.clone()).await.expect_err("the name is still taken after the restart");
    assert!(err.message().contains(&id[..12]), "the error names the holder {id}: {:?}: {}", err.code(), err.message());

    // And the restarted daemon can still stop it.
    td.stop_pod(&id).await.expect("stop");
    assert!(host::wait_process_gone(init, Some(init_start), Duration::from_secs(10)));
    assert!(host::wait_process_gone(monitor, Some(monitor_start), Duration::from_secs(10)));
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_the_pod_ready() {
    let mut td = daemon().await;
    let id = run(&td, pod_config("graceful")).await;
    let before = td.pod_status(&id).await.expect("status").status;
    let info = td.pod_info(&id).await.expect("info");
    restart(&mut td).await;
    assert_eq!(td.pod_status(&id).await.expect("status").status, before);
    assert_eq!(td.pod_info(&id).await.expect("info").pid, info.pid);
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_monitor_makes_the_pod_not_ready() {
    let td = daemon().await;
    let id = run(&td, pod_config("orphan")).await;
    let info = td.pod_info(&id).await.expect("info");
    let monitor = info.monitor();
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill the monitor");
    if let Err(e) = td.wait_pod_state(&id, PodSandboxState::SandboxNotready, Duration::from_secs(15)).await {
        panic!("{e}\n{}", td.log_tail(40));
    }
    td.remove_pod(&id).await.expect("remove");
    let err = td.pod_status(&id).await.expect_err("status after remove");
    assert_eq!(err.code(), tonic::Code::NotFound);
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reboot_pods_are_not_ready_and_removable() {
    let mut td = daemon().await;
    let a_cfg = pod_config("reboot-a");
    let a = run(&td, a_cfg.clone()).await;
    let b = run(&td, pod_config("reboot-b").host_network()).await;
    let created = td.pod_status(&a).await.expect("status").status.unwrap().created_at;

    let errors = td.simulate_reboot();
    assert!(errors.is_empty(), "simulating the reboot: {errors:?}");
    restart(&mut td).await;

    for id in [&a, &b] {
        assert_eq!(
            td.pod_state(id).await.expect("status after reboot"),
            PodSandboxState::SandboxNotready,
            "pod {id} after the reboot"
        );
    }
    let st = td.pod_status(&a).await.unwrap().status.unwrap();
    assert_eq!(st.created_at, created);
    assert_eq!(td.list_pods(None).await.expect("list").len(), 2);

    td.stop_pod(&a).await.expect("stop after reboot");
    td.remove_pod(&a).await.expect("remove after reboot");
    td.remove_pod(&b).await.expect("remove (without stop) after reboot");
    assert!(td.list_pods(None).await.expect("list").is_empty());
    td.assert_no_leaks().await;

    let again = run(&td, a_cfg).await;
    td.remove_pod(&again).await.expect("remove");
    td.assert_no_leaks().await;
}

/// The harness itself: what a killed daemon leaves behind shows up in `leaks()`, and dropping the
/// harness removes it all (so a failing test leaks nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_reports_and_cleans_what_a_killed_daemon_left() {
    let mut td = daemon().await;
    let parent = td.cgroup_parent();
    let id = run(&td, pod_config("leaky").cgroup_parent(&parent)).await;
    let info = td.pod_info(&id).await.expect("info");
    let (init, monitor) = (info.init_pid(), info.monitor());
    let init_start = host::proc_stat(init).unwrap().start_time;
    let monitor_start = host::proc_stat(monitor).unwrap().start_time;
    td.kill9();

    let leaks = td.leaks();
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(leaks.iter().any(|l| pred(l)), "leaks() does not report {what}: {leaks:#?}");
    };
    has(&|l| l.starts_with("mount ") && l.contains(&id) && l.contains("/shm"), "the shm mount");
    has(&|l| l.starts_with("mount ") && l.contains("/ns/net/"), "the net pin");
    has(&|l| l.starts_with(&format!("process {init} ")), "the pod init");
    has(&|l| l.starts_with(&format!("process {monitor} ")), "the monitor");
    has(&|l| l.starts_with("leftover ") && l.contains(&format!("pods/{id}")), "the pod dirs");
    has(&|l| l.starts_with("leftover ") && l.contains(&format!("crius-{id}")), "the netns alias");
    has(&|l| l.starts_with("cgroup ") && l.contains(&id), "the pod cgroup");

    let base = td.base().to_path_buf();
    let cgroup = host::cgroup_dir(&parent);
    drop(td);
    assert!(host::wait_process_gone(init, Some(init_start), Duration::from_secs(5)), "pod init survived the harness");
    assert!(
        host::wait_process_gone(monitor, Some(monitor_start), Duration::from_secs(5)),
        "monitor survived the harness"
    );
    assert!(host::mounts_under(&base).is_empty(), "mounts survived the harness: {:?}", host::mounts_under(&base));
    assert!(!base.exists(), "{} survived the harness", base.display());
    assert!(!cgroup.exists(), "{} survived the harness", cgroup.display());
}

/// The daemon dies in StopPodSandbox after closing the host ports and before CNI DEL: the
/// restarted daemon finishes the stop (the pod is NotReady, its network torn down) and does not
/// restore its host port rules onto the IP that DEL gives back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_cut_by_a_crash_is_finished_at_restart() {
    let mut td =
        match TestDaemon::builder().bridge_network().start_with_env(BIN, &[(CRASH_ENV, TEARDOWN_CRASH_STEP)]).await {
            Ok(td) => td,
            Err(e) => panic!("the daemon did not start: {e}"),
        };
    let cfg = full_pod("crash-in-stop");
    let cfg = cfg.cgroup_parent(&td.cgroup_parent());
    let id = run(&td, cfg).await;
    assert!(!td.hostport_chains().is_empty(), "the pod's host port has rules");
    let info = td.pod_info(&id).await.expect("info");
    let monitor = info.monitor();

    assert!(td.stop_pod(&id).await.is_err(), "the daemon was to die during the stop");
    let status = td.wait_exit(Duration::from_secs(30)).await.expect("the daemon crashed in the stop");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{}", td.log_tail(30));
    assert!(td.hostport_chains().is_empty(), "the crash came after the host ports were closed");

    restart(&mut td).await;
    assert_eq!(td.pod_state(&id).await.expect("status"), PodSandboxState::SandboxNotready);
    assert!(td.hostport_chains().is_empty(), "recovery restored host port rules of a stopped pod");
    assert!(host::wait_process_gone(monitor, None, Duration::from_secs(10)), "the stop's teardown was finished");
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

/// The node reboots while RunPodSandbox is past CNI ADD: the creation's record (volatile) is
/// gone, but the IP allocation and the cached CNI result are on disk. The restarted daemon runs
/// CNI DEL for that pod it has no record of, so no IP stays allocated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_during_network_setup_leaks_no_ip() {
    let mut td = match TestDaemon::builder().bridge_network().start_with_env(BIN, &[(CRASH_ENV, "host_ports")]).await {
        Ok(td) => td,
        Err(e) => panic!("the daemon did not start: {e}"),
    };
    let cfg = full_pod("reboot-mid-run").cgroup_parent(&td.cgroup_parent());
    assert!(td.runtime().run_pod_sandbox(run_request(cfg.clone())).await.is_err());
    td.wait_exit(Duration::from_secs(30)).await.expect("the daemon crashed before host_ports");
    let leaks = td.bridge().map(|b| b.leaks()).unwrap_or_default();
    assert!(leaks.iter().any(|l| l.starts_with("IP allocation")), "CNI ADD had allocated an IP: {leaks:?}");

    let errors = td.simulate_reboot();
    assert!(errors.is_empty(), "simulating the reboot: {errors:?}");
    restart(&mut td).await;
    assert!(td.list_pods(None).await.expect("list").is_empty());
    td.assert_no_leaks().await;
    let id = run(&td, cfg).await;
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

/// While start-up recovery runs (here it undoes a pod cut by a crash, and CNI DEL is slow), every
/// CRI and admin call answers Unavailable with a reason, never a half-loaded answer; once it is
/// done the daemon serves, and the cut pod is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answer_unavailable_until_recovery_is_done() {
    let mut td = match TestDaemon::builder()
        .bridge_network()
        .cni_plugin("crius-test-slow-del", crius_testkit::network::slow_cni_plugin("DEL"))
        .bridge_chain_plugin(crius_testkit::serde_json::json!({"type": "crius-test-slow-del"}))
        .start_with_env(BIN, &[(CRASH_ENV, "host_ports")])
        .await
    {
        Ok(td) => td,
        Err(e) => panic!("the daemon did not start: {e}"),
    };
    let bin = td.cni_bin_dir();
    let cfg = full_pod("recovering").cgroup_parent(&td.cgroup_parent());
    assert!(td.runtime().run_pod_sandbox(run_request(cfg.clone())).await.is_err());
    td.wait_exit(Duration::from_secs(30)).await.expect("the daemon crashed before host_ports");

    td.restart_unready(&[]).await.expect("start the daemon again");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !bin.join("del-started").exists() {
        assert!(std::time::Instant::now() < deadline, "recovery never ran CNI DEL\n{}", td.log_tail(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Recovery is held in CNI DEL: the socket is served, and every service says why it waits.
    let channel = async {
        loop {
            if let Ok(c) = crius_testkit::connect(td.socket()).await {
                break c;
            }
            assert!(std::time::Instant::now() < deadline, "the socket is not served during recovery");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    .await;
    let mut runtime = crius_testkit::RuntimeServiceClient::new(channel.clone());
    let mut images = crius_testkit::ImageServiceClient::new(channel);
    let unavailable = |what: &str, r: Result<(), crius_testkit::tonic::Status>| {
        let s = r.expect_err(what);
        assert_eq!(s.code(), crius_testkit::tonic::Code::Unavailable, "{what}: {s:?}");
        assert!(s.message().contains("recovering"), "{what}: {}", s.message());
    };
    unavailable(
        "ListPodSandbox",
        runtime.list_pod_sandbox(crius_testkit::cri::ListPodSandboxRequest::default()).await.map(drop),
    );
    unavailable("RunPodSandbox", runtime.run_pod_sandbox(run_request(cfg.clone())).await.map(drop));
    unavailable("ListImages", images.list_images(crius_testkit::cri::ListImagesRequest::default()).await.map(drop));
    let junk = td.base().join("junk.tar");
    std::fs::write(&junk, "not an archive").expect("write junk.tar");
    let import = std::process::Command::new(BIN)
        .arg("--config")
        .arg(td.config_path())
        .args(["image", "import"])
        .arg(&junk)
        .output()
        .expect("run crius image import");
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert!(!import.status.success() && stderr.contains("recovering"), "admin Import during recovery: {stderr}");

    std::fs::write(bin.join("fast"), "").expect("write the fast marker");
    td.wait_ready().await.unwrap_or_else(|e| panic!("recovery did not finish: {e}"));
    assert!(td.list_pods(None).await.expect("list").is_empty(), "the cut pod is undone");
    td.assert_no_leaks().await;
    let id = run(&td, cfg).await;
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}
