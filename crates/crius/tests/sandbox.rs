//! Pod sandbox lifecycle against a real daemon (run as root). Each test has its own daemon on its
//! own temp dirs, so they run in parallel, and each ends by asserting that nothing leaked.

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crius_testkit::cri::{
    NamespaceMode, PodSandboxConfig, PodSandboxState, RunPodSandboxRequest, StatusRequest, VersionRequest,
};
use crius_testkit::{
    Ns, Nsenter, PodConfigExt, PodInfo, TestDaemon, filter_id, filter_labels, filter_state, host, pod_config,
    run_request,
};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_crius");

async fn daemon() -> TestDaemon {
    match TestDaemon::start(BIN).await {
        Ok(td) => td,
        Err(e) => panic!("the daemon did not start: {e}"),
    }
}

fn random_id() -> String {
    // 64 hex characters no daemon made.
    let a = crius_testkit::unique_name("x");
    let hex: String = a.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    format!("{:0>64}", format!("dead{hex}"))
}

fn node_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").expect("reading the node's hostname").trim().to_string()
}

fn read_trimmed(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())).trim().to_string()
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn expect_invalid(td: &TestDaemon, req: RunPodSandboxRequest, what: &str) {
    match td.runtime().run_pod_sandbox(req).await {
        Ok(r) => {
            let id = r.into_inner().pod_sandbox_id;
            td.track_pod(&id);
            panic!("{what}: RunPodSandbox succeeded (pod {id}), expected InvalidArgument");
        }
        Err(s) => assert_eq!(
            s.code(),
            Code::InvalidArgument,
            "{what}: expected InvalidArgument, got {:?}: {}",
            s.code(),
            s.message()
        ),
    }
    let pods = td.list_pods(None).await.expect("list");
    assert!(pods.is_empty(), "{what}: a rejected request left pods: {pods:?}");
}

async fn info(td: &TestDaemon, id: &str) -> PodInfo {
    td.pod_info(id).await.unwrap_or_else(|e| panic!("verbose status of {id}: {e}"))
}

async fn run(td: &TestDaemon, cfg: PodSandboxConfig) -> String {
    match td.run_pod(cfg).await {
        Ok(id) => id,
        Err(s) => panic!("RunPodSandbox failed: {:?}: {}\n{}", s.code(), s.message(), td.log_tail(60)),
    }
}

async fn state_of(td: &TestDaemon, id: &str) -> PodSandboxState {
    td.pod_state(id).await.unwrap_or_else(|s| panic!("status of {id}: {:?}: {}", s.code(), s.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_answers_v1() {
    let td = daemon().await;
    let v = td.runtime().version(VersionRequest { version: "v1".into() }).await.expect("Version").into_inner();
    assert_eq!(v.runtime_api_version, "v1");
    assert!(!v.runtime_name.is_empty(), "{v:?}");
    assert!(!v.runtime_version.is_empty(), "{v:?}");
    assert!(!v.version.is_empty(), "{v:?}");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_runtime_ready_and_network_condition() {
    let td = daemon().await;
    let st = td.runtime().status(StatusRequest { verbose: false }).await.expect("Status").into_inner();
    let conditions = st.status.expect("a runtime status").conditions;
    let runtime = conditions
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .unwrap_or_else(|| panic!("no RuntimeReady condition: {conditions:?}"));
    assert!(runtime.status, "RuntimeReady is false: {runtime:?}");
    assert!(conditions.iter().any(|c| c.r#type == "NetworkReady"), "no NetworkReady condition: {conditions:?}");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_runtime_handlers_and_verbose_info() {
    let td = TestDaemon::builder()
        .config_line(r#"default_runtime = "spare""#)
        .config_line(r#"runtimes = { runc = { binary = "runc" }, spare = { binary = "runc" } }"#)
        .start(BIN)
        .await
        .unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
    let status = |verbose| {
        let mut rt = td.runtime();
        async move { rt.status(StatusRequest { verbose }).await.expect("Status").into_inner() }
    };

    let st = status(false).await;
    // The default first, also under the empty name (what the kubelet asks for by default).
    let names: Vec<&str> = st.runtime_handlers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["", "spare", "runc"], "{:?}", st.runtime_handlers);
    assert!(st.runtime_handlers.iter().all(|h| h.features.is_some()), "{:?}", st.runtime_handlers);
    assert!(st.features.is_some());
    assert!(st.info.is_empty(), "info only when verbose: {:?}", st.info);

    // Each listed handler is one RunPodSandbox takes; another is refused, naming those.
    let run_with = |name: &str, handler: &str| {
        let request = RunPodSandboxRequest { runtime_handler: handler.into(), ..run_request(pod_config(name)) };
        let mut rt = td.runtime();
        async move { rt.run_pod_sandbox(request).await.map(|r| r.into_inner().pod_sandbox_id) }
    };
    let id = run_with("handler", "runc").await.unwrap_or_else(|s| panic!("RunPodSandbox with runc: {s:?}"));
    td.track_pod(&id);
    let err = run_with("unknown", "kata").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("kata") && err.message().contains("spare"), "{}", err.message());

    let st = status(true).await;
    let info = st.info.get("info").unwrap_or_else(|| panic!("no verbose info: {:?}", st.info));
    let info: serde_json::Value = serde_json::from_str(info).expect("verbose info is JSON");
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()), "{info}");
    assert_eq!(info["pods"], 1, "{info}");
    assert_eq!(info["config"]["default_runtime"], "spare", "{info}");
    assert_eq!(info["config"]["runtimes"]["spare"]["binary"], "runc", "{info}");

    td.remove_all_pods().await.expect("removing the pod");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_run_status_list_stop_remove() {
    let td = daemon().await;
    let cfg = pod_config("lifecycle").label("app", "web").annotation("note", "kept as is");
    let md = cfg.metadata.clone().unwrap();
    let id = run(&td, cfg.clone()).await;
    assert_eq!(id.len(), 64, "ids are 64 hex characters: {id}");

    // Status.
    let resp = td.pod_status(&id).await.expect("status");
    let st = resp.status.clone().expect("a status");
    assert_eq!(st.id, id);
    assert_eq!(st.metadata.as_ref(), Some(&md));
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    assert!(
        st.created_at > 0 && (now_ns - st.created_at).abs() < 300_000_000_000,
        "created_at {} is not about now ({now_ns})",
        st.created_at
    );
    assert_eq!(st.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(st.annotations.get("note").map(String::as_str), Some("kept as is"));
    let opts = st
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
        .expect("namespace options in status");
    assert_eq!(opts.network, NamespaceMode::Pod as i32);
    assert_eq!(opts.ipc, NamespaceMode::Pod as i32);
    assert_eq!(opts.pid, NamespaceMode::Pod as i32);

    // Verbose info.
    let info = PodInfo::from_info_map(&resp.info).expect("verbose info");
    for key in ["config", "timeline"] {
        assert!(info.raw.get(key).is_some(), "verbose info lacks {key}: {}", info.raw);
    }
    let init = info.init_pid();
    let monitor = info.monitor();
    let init_start = host::proc_stat(init).expect("pod init alive").start_time;
    let monitor_start = host::proc_stat(monitor).expect("monitor alive").start_time;
    let monitor_cmd = host::cmdline(monitor);
    assert!(monitor_cmd.contains(&id), "the monitor's command line names the pod: {monitor_cmd}");

    // Files.
    for f in ["state.json", "hostname", "hosts", "resolv.conf"] {
        let p = td.pod_dir(&id).join(f);
        assert!(p.is_file(), "{} missing", p.display());
    }
    assert_eq!(read_trimmed(&td.pod_dir(&id).join("hostname")), "lifecycle");
    assert!(td.pod_run_dir(&id).join("monitor.sock").exists(), "no monitor socket");

    // Pinned namespaces, the same as the pod init's.
    for (kind, path) in [
        ("net", &info.namespaces.net),
        ("ipc", &info.namespaces.ipc),
        ("uts", &info.namespaces.uts),
        ("pid", &info.namespaces.pid),
    ] {
        let pin = td.ns_pin(kind, &id);
        assert_eq!(path.as_ref(), Some(&pin), "{kind} pin path");
        let pinned =
            host::ns_inode_of_path(&pin).unwrap_or_else(|| panic!("{} is not a pinned namespace", pin.display()));
        assert_eq!(Some(pinned), host::ns_inode_of_pid(init, kind), "{kind} pin is the pod init's namespace");
        assert!(!host::same_ns_as_self(init, kind), "the pod init shares the host's {kind} namespace");
    }
    let alias = td.netns_alias(&id).unwrap();
    assert_eq!(
        host::ns_inode_of_path(&alias),
        host::ns_inode_of_pid(init, "net"),
        "{} is the pod's netns",
        alias.display()
    );

    // /dev/shm.
    let shm = host::mount_at(&td.shm_path(&id)).expect("the pod's shm is mounted");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(shm.super_options.contains("size=65536k"), "shm size is the 64 MiB default: {}", shm.super_options);

    // List.
    let pods = td.list_pods(None).await.expect("list");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0].id, id);
    assert_eq!(pods[0].metadata.as_ref(), Some(&md));
    assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32);
    assert_eq!(pods[0].created_at, st.created_at);
    assert_eq!(pods[0].labels, st.labels);
    assert_eq!(pods[0].annotations, st.annotations);

    // Stop: processes, pins and shm go, the pod stays listed as NotReady.
    td.stop_pod(&id).await.expect("stop");
    assert_eq!(state_of(&td, &id).await, PodSandboxState::SandboxNotready);
    assert!(host::wait_process_gone(init, Some(init_start), Duration::from_secs(10)), "pod init {init} outlived stop");
    assert!(
        host::wait_process_gone(monitor, Some(monitor_start), Duration::from_secs(10)),
        "monitor {monitor} outlived stop"
    );
    for kind in ["net", "ipc", "uts", "pid"] {
        let pin = td.ns_pin(kind, &id);
        assert!(!pin.exists(), "{} left after stop", pin.display());
    }
    assert!(!alias.exists(), "{} left after stop", alias.display());
    assert!(host::mount_at(&td.shm_path(&id)).is_none(), "shm still mounted after stop");
    let pods = td.list_pods(None).await.expect("list");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, PodSandboxState::SandboxNotready as i32);

    // Remove: gone everywhere.
    td.remove_pod(&id).await.expect("remove");
    let err = td.pod_status(&id).await.expect_err("status after remove");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(td.list_pods(None).await.expect("list").is_empty());
    assert!(!td.pod_dir(&id).exists(), "pod dir left after remove");
    assert!(!td.pod_run_dir(&id).exists(), "pod run dir left after remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_id_prefix_state_and_labels() {
    let td = daemon().await;
    let a = run(&td, pod_config("filter-a").label("app", "a").label("tier", "x")).await;
    let b = run(&td, pod_config("filter-b").label("app", "b").label("tier", "x")).await;
    let ids = |pods: Vec<crius_testkit::cri::PodSandbox>| {
        let mut v: Vec<String> = pods.into_iter().map(|p| p.id).collect();
        v.sort();
        v
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();

    assert_eq!(ids(td.list_pods(None).await.unwrap()), both);
    assert_eq!(ids(td.list_pods(Some(filter_id(&a))).await.unwrap()), vec![a.clone()]);
    assert_eq!(
        ids(td.list_pods(Some(filter_id(&b[..12]))).await.unwrap()),
        vec![b.clone()],
        "a unique id prefix selects the pod"
    );
    assert!(td.list_pods(Some(filter_id(&random_id()))).await.unwrap().is_empty(), "an unknown id selects nothing");
    assert_eq!(ids(td.list_pods(Some(filter_labels(&[("app", "a")]))).await.unwrap()), vec![a.clone()]);
    assert_eq!(ids(td.list_pods(Some(filter_labels(&[("tier", "x")]))).await.unwrap()), both);
    assert_eq!(ids(td.list_pods(Some(filter_labels(&[("tier", "x"), ("app", "b")]))).await.unwrap()), vec![b.clone()]);
    assert!(td.list_pods(Some(filter_labels(&[("app", "none")]))).await.unwrap().is_empty());
    assert_eq!(ids(td.list_pods(Some(filter_state(PodSandboxState::SandboxReady))).await.unwrap()), both);

    td.stop_pod(&b).await.expect("stop b");
    assert_eq!(ids(td.list_pods(Some(filter_state(PodSandboxState::SandboxReady))).await.unwrap()), vec![a.clone()]);
    assert_eq!(ids(td.list_pods(Some(filter_state(PodSandboxState::SandboxNotready))).await.unwrap()), vec![b.clone()]);
    let mut f = filter_state(PodSandboxState::SandboxReady);
    f.id = b.clone();
    assert!(td.list_pods(Some(f)).await.unwrap().is_empty(), "filters combine (id b and Ready)");

    td.remove_pod(&a).await.expect("remove a");
    td.remove_pod(&b).await.expect("remove b");
    assert!(td.list_pods(None).await.unwrap().is_empty());
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_remove_are_idempotent_and_release_the_name() {
    let td = daemon().await;
    let cfg = pod_config("idempotent");
    let id = run(&td, cfg.clone()).await;
    td.stop_pod(&id).await.expect("stop");
    td.stop_pod(&id).await.expect("second stop");
    td.remove_pod(&id).await.expect("remove");
    td.remove_pod(&id).await.expect("second remove");
    td.stop_pod(&id).await.expect("stop after remove");

    let unknown = random_id();
    td.stop_pod(&unknown).await.expect("stop of an unknown id");
    td.remove_pod(&unknown).await.expect("remove of an unknown id");
    td.assert_no_leaks().await;

    // The name is free again.
    let again = run(&td, cfg).await;
    assert_ne!(again, id);
    td.remove_pod(&again).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_unknown_pod_is_not_found() {
    let td = daemon().await;
    let err = td.pod_status(&random_id()).await.expect_err("status of an unknown id");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_empty_metadata_is_invalid() {
    let td = daemon().await;
    expect_invalid(&td, RunPodSandboxRequest { config: None, runtime_handler: String::new() }, "no config").await;
    expect_invalid(&td, pod_config("no-metadata").without_metadata().request(), "no metadata").await;
    let mut c = pod_config("x");
    c.metadata.as_mut().unwrap().name.clear();
    expect_invalid(&td, run_request(c), "empty name").await;
    let mut c = pod_config("empty-namespace");
    c.metadata.as_mut().unwrap().namespace.clear();
    expect_invalid(&td, run_request(c), "empty namespace").await;
    let mut c = pod_config("empty-uid");
    c.metadata.as_mut().unwrap().uid.clear();
    expect_invalid(&td, run_request(c), "empty uid").await;
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_of_ready_pod_stops_it_first() {
    let td = daemon().await;
    let id = run(&td, pod_config("remove-ready")).await;
    let info = info(&td, &id).await;
    let (init, monitor) = (info.init_pid(), info.monitor());
    let init_start = host::proc_stat(init).unwrap().start_time;
    let monitor_start = host::proc_stat(monitor).unwrap().start_time;
    td.remove_pod(&id).await.expect("remove of a Ready pod");
    assert!(host::wait_process_gone(init, Some(init_start), Duration::from_secs(10)));
    assert!(host::wait_process_gone(monitor, Some(monitor_start), Duration::from_secs(10)));
    let err = td.pod_status(&id).await.expect_err("status after remove");
    assert_eq!(err.code(), Code::NotFound);
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pod_has_no_net_or_uts_namespace() {
    let td = daemon().await;
    let id = run(&td, pod_config("hostnet").host_network().hostname("")).await;
    let info = info(&td, &id).await;
    let init = info.init_pid();
    assert_eq!(info.namespaces.net, None, "{}", info.raw);
    assert_eq!(info.namespaces.uts, None, "{}", info.raw);
    assert!(info.namespaces.ipc.is_some(), "{}", info.raw);
    assert!(info.namespaces.pid.is_some(), "{}", info.raw);
    assert!(!td.ns_pin("net", &id).exists());
    assert!(!td.ns_pin("uts", &id).exists());
    assert!(!td.netns_alias(&id).unwrap().exists());
    assert!(host::same_ns_as_self(init, "net"), "pod init not in the host netns");
    assert!(host::same_ns_as_self(init, "uts"), "pod init not in the host uts ns");
    assert!(!host::same_ns_as_self(init, "ipc"));
    assert_eq!(
        read_trimmed(&td.pod_dir(&id).join("hostname")),
        node_hostname(),
        "a host-network pod's hostname is the node's"
    );
    let st = td.pod_status(&id).await.unwrap().status.unwrap();
    let opts = st.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(opts.network, NamespaceMode::Node as i32);
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ipc_pod_has_no_shm_and_no_ipc_namespace() {
    let td = daemon().await;
    let id = run(&td, pod_config("hostipc").host_ipc()).await;
    let info = info(&td, &id).await;
    let init = info.init_pid();
    assert_eq!(info.namespaces.ipc, None, "{}", info.raw);
    assert!(info.namespaces.net.is_some(), "{}", info.raw);
    assert!(!td.ns_pin("ipc", &id).exists());
    assert!(host::mount_at(&td.shm_path(&id)).is_none(), "a host-IPC pod gets no shm mount");
    assert!(host::same_ns_as_self(init, "ipc"));
    assert!(!host::same_ns_as_self(init, "net"));
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_pid_pod_has_no_pid_namespace() {
    let td = daemon().await;
    let id = run(&td, pod_config("hostpid").host_pid()).await;
    let info = info(&td, &id).await;
    let init = info.init_pid();
    assert_eq!(info.namespaces.pid, None, "{}", info.raw);
    assert!(!td.ns_pin("pid", &id).exists());
    assert!(host::same_ns_as_self(init, "pid"));
    assert_eq!(host::ns_pids(init), vec![init], "no nested pid namespace");
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_pid_mode_makes_no_pod_pid_namespace() {
    let td = daemon().await;
    let id = run(&td, pod_config("containerpid").pid_mode(NamespaceMode::Container)).await;
    let info = info(&td, &id).await;
    assert_eq!(info.namespaces.pid, None, "{}", info.raw);
    assert!(!td.ns_pin("pid", &id).exists());
    assert!(info.namespaces.net.is_some());
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_and_hostname_are_seen_inside_the_pod() {
    let td = daemon().await;
    let id = run(
        &td,
        pod_config("dns").hostname("dns-pod-host").dns(
            &["127.0.0.53", "::1"],
            &["svc.cluster.local", "cluster.local"],
            &["ndots:5", "timeout:1"],
        ),
    )
    .await;
    let info = info(&td, &id).await;

    let resolv = fs::read_to_string(td.pod_dir(&id).join("resolv.conf")).unwrap();
    let lines: Vec<String> = resolv.lines().map(words).collect();
    for want in [
        "nameserver 127.0.0.53",
        "nameserver ::1",
        "search svc.cluster.local cluster.local",
        "options ndots:5 timeout:1",
    ] {
        assert!(lines.iter().any(|l| l == want), "resolv.conf lacks {want:?}:\n{resolv}");
    }
    assert_eq!(read_trimmed(&td.pod_dir(&id).join("hostname")), "dns-pod-host");
    let hosts = fs::read_to_string(td.pod_dir(&id).join("hosts")).unwrap();
    assert!(hosts.contains("localhost"), "hosts file:\n{hosts}");

    let uts = info.namespaces.uts.clone().expect("a uts pin");
    assert_eq!(Nsenter::new().ns_path(Ns::Uts, &uts).output(["hostname"]), "dns-pod-host");
    assert_eq!(Nsenter::target(info.init_pid()).enter(&[Ns::Uts]).output(["hostname"]), "dns-pod-host");
    assert_ne!(node_hostname(), "dns-pod-host", "the node's hostname is untouched");

    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_up_in_the_pod_netns() {
    let td = daemon().await;
    let id = run(&td, pod_config("loopback")).await;
    let info = info(&td, &id).await;
    let net = info.namespaces.net.clone().expect("a net pin");
    for path in [net, td.netns_alias(&id).unwrap()] {
        let out = Nsenter::new().ns_path(Ns::Net, &path).output(["ip", "-o", "link", "show", "lo"]);
        let flags =
            out.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(f, _)| f.to_string()).unwrap_or_default();
        assert!(flags.split(',').any(|f| f == "UP"), "lo is not up in {}: {out}", path.display());
    }
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_sysctls_are_applied_inside_the_pod() {
    let td = daemon().await;
    let host_port_start = read_trimmed("/proc/sys/net/ipv4/ip_unprivileged_port_start".as_ref());
    let host_ping = words(&read_trimmed("/proc/sys/net/ipv4/ping_group_range".as_ref()));
    let id = run(
        &td,
        pod_config("sysctl")
            .sysctl("net.ipv4.ip_unprivileged_port_start", "80")
            .sysctl("net.ipv4.ping_group_range", "0 2147483647"),
    )
    .await;
    let info = info(&td, &id).await;
    let net = Nsenter::new().ns_path(Ns::Net, info.namespaces.net.clone().expect("a net pin"));
    assert_eq!(net.output(["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]), "80");
    assert_eq!(words(&net.output(["cat", "/proc/sys/net/ipv4/ping_group_range"])), "0 2147483647");
    assert_eq!(
        read_trimmed("/proc/sys/net/ipv4/ip_unprivileged_port_start".as_ref()),
        host_port_start,
        "the host's value is untouched"
    );
    assert_eq!(words(&read_trimmed("/proc/sys/net/ipv4/ping_group_range".as_ref())), host_ping);
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_sysctls_are_applied_inside_the_pod() {
    let td = daemon().await;
    let host_value = read_trimmed("/proc/sys/kernel/shm_rmid_forced".as_ref());
    let want = if host_value == "1" { "0" } else { "1" };
    let id = run(&td, pod_config("ipcsysctl").sysctl("kernel.shm_rmid_forced", want)).await;
    let info = info(&td, &id).await;
    let ipc = Nsenter::new().ns_path(Ns::Ipc, info.namespaces.ipc.clone().expect("an ipc pin"));
    assert_eq!(ipc.output(["cat", "/proc/sys/kernel/shm_rmid_forced"]), want);
    assert_eq!(read_trimmed("/proc/sys/kernel/shm_rmid_forced".as_ref()), host_value, "the host's value is untouched");
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sysctls_are_rejected() {
    let td = daemon().await;
    expect_invalid(
        &td,
        pod_config("sysctl-panic").sysctl("kernel.panic", "10").request(),
        "a sysctl of no namespace (kernel.panic)",
    )
    .await;
    expect_invalid(
        &td,
        pod_config("sysctl-hostnet").host_network().sysctl("net.ipv4.ip_unprivileged_port_start", "80").request(),
        "a net sysctl with host network",
    )
    .await;
    expect_invalid(
        &td,
        pod_config("sysctl-hostipc").host_ipc().sysctl("kernel.shm_rmid_forced", "1").request(),
        "an ipc sysctl with host IPC",
    )
    .await;
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_searches_are_limited_to_32() {
    let td = daemon().await;
    let names: Vec<String> = (0..33).map(|i| format!("s{i}.example.test")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    expect_invalid(&td, pod_config("dns-33").dns(&["127.0.0.53"], &refs, &[]).request(), "33 DNS searches").await;
    td.assert_no_leaks().await;

    let id = run(&td, pod_config("dns-32").dns(&["127.0.0.53"], &refs[..32], &[])).await;
    let resolv = fs::read_to_string(td.pod_dir(&id).join("resolv.conf")).unwrap();
    assert!(
        resolv.lines().any(|l| words(l) == format!("search {}", refs[..32].join(" "))),
        "32 searches are kept:\n{resolv}"
    );
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_init_is_pid_one_in_its_pid_namespace() {
    let td = daemon().await;
    let id = run(&td, pod_config("pidone")).await;
    let info = info(&td, &id).await;
    let init = info.init_pid();
    assert_eq!(host::ns_pids(init), vec![init, 1], "NSpid of the pod init: its host pid, then 1");
    let pin = info.namespaces.pid.clone().expect("a pid pin");
    assert_eq!(host::ns_inode_of_path(&pin), host::ns_inode_of_pid(init, "pid"));
    // A process started in the pod's pid namespace sees itself with a pid above 1.
    let out = Nsenter::new().ns_path(Ns::Pid, &pin).output(["sh", "-c", "echo $$"]);
    let inner: i32 = out.parse().unwrap_or_else(|_| panic!("not a pid: {out}"));
    assert!(inner > 1, "a second process in the pod pid ns has pid {inner}");
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_of_the_same_pod_one_wins() {
    let td = daemon().await;
    let cfg = pod_config("race");
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut client = td.runtime();
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            client.run_pod_sandbox(run_request(cfg)).await.map(|r| r.into_inner().pod_sandbox_id)
        }));
    }
    let mut wins = Vec::new();
    let mut losses = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(id) => {
                td.track_pod(&id);
                wins.push(id)
            }
            Err(s) => losses.push(s),
        }
    }
    assert_eq!(wins.len(), 1, "exactly one RunPodSandbox wins: {wins:?}, losses {losses:?}");
    let winner = &wins[0];
    for s in &losses {
        assert!(
            s.message().contains(winner.as_str()) || s.message().contains(&winner[..12]),
            "the loser's error names the holder {winner}: {:?}: {}",
            s.code(),
            s.message()
        );
    }
    let pods = td.list_pods(None).await.unwrap();
    assert_eq!(pods.len(), 1, "{pods:?}");
    td.remove_pod(winner).await.expect("remove");
    td.assert_no_leaks().await;
}

/// The kubelet's RunPodSandbox deadline passes while crius is still making the pod: the client
/// goes away mid-call (here while a CNI plugin is held in ADD, so the cut always falls mid-run).
/// crius finishes the pod all the same; the kubelet's retries, during and after, name the pod
/// that holds the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_mid_run_leaves_a_whole_pod() {
    let conflist = r#"{"cniVersion":"1.0.0","name":"crius-test-slow-lo","plugins":[{"type":"crius-test-slow"}]}"#;
    let td = TestDaemon::builder()
        .cni_plugin("crius-test-slow", crius_testkit::network::slow_cni_plugin("ADD"))
        .cni_conflist(conflist)
        .start(BIN)
        .await
        .unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
    let bin = td.cni_bin_dir();
    // Lets a held plugin go on whatever the test's verdict, so the daemon can be torn down.
    struct Release(std::path::PathBuf);
    impl Drop for Release {
        fn drop(&mut self) {
            let _ = fs::write(self.0.join("fast"), "");
        }
    }
    let release = Release(bin.clone());
    let cfg = pod_config("impatient");

    let mut client = td.runtime();
    let request = run_request(cfg.clone());
    let call = tokio::spawn(async move { client.run_pod_sandbox(request).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !bin.join("add-started").exists() {
        assert!(std::time::Instant::now() < deadline, "the slow plugin's ADD did not start\n{}", td.log_tail(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client gives up: its stream is reset while the pod is half made.
    call.abort();
    assert!(call.await.is_err_and(|e| e.is_cancelled()), "the call ended before it was cut");

    // A retry while the pod is still being made names the pod that holds the name.
    let early = td.run_pod(cfg.clone()).await.expect_err("the name is held by the pod being made");
    assert_eq!(early.code(), Code::AlreadyExists, "{}", early.message());
    drop(release);

    let mut pods = Vec::new();
    for _ in 0..600 {
        pods = td.list_pods(None).await.expect("list");
        if !pods.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pods.len(), 1, "the abandoned RunPodSandbox did not finish its pod: {pods:?}\n{}", td.log_tail(60));
    let id = pods[0].id.clone();
    td.track_pod(&id);
    assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32, "{pods:?}");
    assert!(early.message().contains(&id), "the early retry did not name {id}: {}", early.message());
    // The retry after it is done finds the name held too, and says by which pod.
    let late = td.run_pod(cfg).await.expect_err("the name is taken by the finished pod");
    assert_eq!(late.code(), Code::AlreadyExists, "{}", late.message());
    assert!(late.message().contains(&id), "{}", late.message());
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_parent_holds_the_pod_init() {
    let td = daemon().await;
    let parent = td.cgroup_parent();
    let id = run(&td, pod_config("cgroup").cgroup_parent(&parent)).await;
    let info = info(&td, &id).await;
    let init = info.init_pid();
    let dir = host::cgroup_dir(&format!("{parent}/{id}"));
    let procs = host::cgroup_procs(&dir);
    assert!(procs.contains(&init), "pod init {init} not in {}: {procs:?}", dir.display());
    let own = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(own.lines().any(|l| l.ends_with(&format!("{parent}/{id}"))), "/proc/{init}/cgroup:\n{own}");
    td.remove_pod(&id).await.expect("remove");
    assert!(!dir.exists(), "{} left after remove", dir.display());
    td.assert_no_leaks().await;
}

/// (step, start µs, duration µs) of the pod's start timeline in its verbose status.
fn timeline(info: &PodInfo) -> Vec<(String, u64, u64)> {
    let steps = info.raw["timeline"].as_array().unwrap_or_else(|| panic!("no timeline in {}", info.raw));
    steps
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("step without {k}: {s}"));
            (s["step"].as_str().unwrap_or_default().to_string(), n("start_us"), n("duration_us"))
        })
        .collect()
}

/// The start timeline accounts for the whole RunPodSandbox without holes or overlaps, within
/// the time the call took as the client saw it, and all of it (its last step, the Ready save,
/// included) is still there after a kill -9 and restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_timeline_covers_the_call_and_survives_a_restart() {
    let mut td = daemon().await;
    let begun = std::time::Instant::now();
    let res = td.runtime().run_pod_sandbox(run_request(pod_config("timeline"))).await;
    let wall_us = u64::try_from(begun.elapsed().as_micros()).unwrap();
    let id = match res {
        Ok(r) => r.into_inner().pod_sandbox_id,
        Err(s) => panic!("RunPodSandbox failed: {:?}: {}\n{}", s.code(), s.message(), td.log_tail(60)),
    };
    td.track_pod(&id);
    let steps = timeline(&info(&td, &id).await);
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    let expected: Vec<&str> = crius_testkit::CRASH_STEPS.iter().copied().filter(|s| *s != "host_ports").collect();
    assert_eq!(names, expected, "a pod without host ports goes through every other step");
    assert_eq!(steps[0].1, 0, "the first step starts the call: {steps:?}");
    for pair in steps.windows(2) {
        let ((_, start, duration), (next, next_start, _)) = (&pair[0], &pair[1]);
        assert_eq!(*next_start, start + duration, "{next} does not start where the step before ended: {steps:?}");
    }
    let total: u64 = steps.iter().map(|s| s.2).sum();
    assert!(total <= wall_us, "the steps take {total} µs, RunPodSandbox took {wall_us} µs: {steps:?}");
    // Steps that spawn a process or flush a file take measurable time.
    for step in ["monitor_start", "state_ready"] {
        assert!(steps.iter().any(|s| s.0 == step && s.2 > 0), "{step} took no time: {steps:?}");
    }

    td.kill9();
    if let Err(e) = td.restart().await {
        panic!("the daemon did not come back: {e}");
    }
    assert_eq!(timeline(&info(&td, &id).await), steps, "the timeline after kill -9 and a restart");
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}
