//! The container service against the fakes: the state machine, a fault at every step of
//! CreateContainer, exits, recovery and the pod's Stop/Remove reaching its containers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::{ContainerConfig, ContainerMetadata, ContainerState, Mount};
use super::{ContainerEventKind, ContainerFilter, ContainerOptions, ContainerService};
use crate::ErrorKind;
use crate::image::ImageConfigInfo;
use crate::ports::container::{ContainerExit, ExecOutput, Resources, RuntimeHandler};
use crate::ports::fake::Fakes;
use crate::ports::fake_container::ContainerFakes;
use crate::sandbox::model::{PodConfig, PodMetadata};
use crate::sandbox::{PodContainers, SandboxOptions, SandboxService};
use crate::spec::HostCaps;

const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

struct Env {
    pods: Fakes,
    fakes: ContainerFakes,
    sandboxes: Arc<SandboxService>,
    svc: Arc<ContainerService>,
    pod_id: String,
}

fn env() -> Env {
    env_with(HostCaps {
        bounding_capabilities: vec!["CAP_CHOWN".into(), "CAP_KILL".into()],
        min_oom_score_adj: -500,
        ..Default::default()
    })
}

fn env_with(host: HostCaps) -> Env {
    let pods = Fakes::default();
    let fakes = ContainerFakes::default();
    fakes.add_image(
        IMAGE,
        ImageConfigInfo {
            cmd: vec!["sh".into()],
            stop_signal: "SIGUSR1".into(),
            volumes: vec!["/data".into()],
            ..Default::default()
        },
    );
    let sandbox_options = SandboxOptions { selinux: host.selinux, ..Default::default() };
    let sandboxes = Arc::new(SandboxService::new(pods.ports(), sandbox_options));
    let options = ContainerOptions {
        runtimes: BTreeMap::from([(
            "runc".to_string(),
            RuntimeHandler {
                name: "runc".into(),
                binary: "runc".into(),
                root: "/run/crius/runc".into(),
                ..Default::default()
            },
        )]),
        default_runtime: "runc".into(),
        host,
    };
    let svc = ContainerService::new_shared(fakes.ports(), sandboxes.clone(), options);
    let pod_id = sandboxes.run(pod_config("web")).unwrap();
    Env { pods, fakes, sandboxes, svc, pod_id }
}

fn pod_config(name: &str) -> PodConfig {
    PodConfig {
        metadata: PodMetadata { name: name.into(), uid: format!("uid-{name}"), namespace: "ns".into(), attempt: 0 },
        hostname: name.into(),
        log_directory: "/var/log/pods/ns_web_uid".into(),
        ..Default::default()
    }
}

fn config(name: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: ContainerMetadata { name: name.into(), attempt: 0 },
        image: IMAGE.into(),
        log_path: format!("{name}/0.log"),
        labels: BTreeMap::from([("app".into(), name.into())]),
        ..Default::default()
    }
}

#[test]
fn create_start_stop_remove() {
    let e = env();
    let mut events = e.svc.subscribe_events();
    let id = e.svc.create(&e.pod_id, config("app")).unwrap();
    let view = e.svc.status(&id).unwrap();
    assert_eq!(view.state(), ContainerState::Created);
    assert_eq!(view.record.log_path.as_deref(), Some("/var/log/pods/ns_web_uid/app/0.log"));
    assert_eq!(view.record.stop_signal, 10, "SIGUSR1 from the image");
    assert!(e.fakes.world().specs.contains_key(&id));
    e.svc.start(&id).unwrap();
    assert_eq!(e.svc.status(&id).unwrap().state(), ContainerState::Running);
    assert!(e.svc.status(&id).unwrap().record.started_at_ns > 0);
    e.svc.stop(&id, 10).unwrap();
    let view = e.svc.status(&id).unwrap();
    assert_eq!(view.state(), ContainerState::Exited);
    assert_eq!(view.record.exit.as_ref().map(|x| x.exit_code), Some(138));
    assert_eq!(view.reason(), "Error");
    e.svc.stop(&id, 10).unwrap();
    e.svc.remove(&id).unwrap();
    e.svc.remove(&id).unwrap();
    assert_eq!(e.svc.status(&id).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(e.fakes.is_empty(), "{:?}", e.fakes.log());
    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|ev| ev.kind).collect();
    use ContainerEventKind::*;
    assert_eq!(kinds, [Created, Started, Stopped, Deleted]);
    // The name is free again.
    e.svc.create(&e.pod_id, config("app")).unwrap();
}

/// Every step of CreateContainer that can fail, as (operation, calls to skip).
const FAULTS: &[(&str, usize)] = &[
    ("save", 0),
    ("hold_layers", 0),
    ("prepare", 0),
    ("read_user_db", 0),
    ("create_volumes", 0),
    ("mount_sources", 0),
    ("ensure_log_dir", 0),
    ("write_spec", 0),
    ("create_container", 0),
    ("save", 1),
];

#[test]
fn a_fault_at_each_step_of_create_undoes_everything() {
    for &(op, skip) in FAULTS {
        let e = env();
        e.fakes.fail_nth(op, skip);
        let err = e.svc.create(&e.pod_id, config("app")).unwrap_err();
        assert!(err.to_string().contains("injected fault"), "{op}#{skip}: {err}");
        assert!(e.fakes.is_empty(), "{op}#{skip} left something: {:?}", e.fakes.log());
        assert!(e.fakes.world().alive.is_empty(), "{op}#{skip} left a process");
        assert!(e.svc.list(&ContainerFilter::default()).is_empty());
        e.svc.create(&e.pod_id, config("app")).unwrap_or_else(|err| panic!("{op}#{skip}: name still held: {err}"));
    }
}

#[test]
fn image_volumes_are_bound_unless_a_cri_mount_is_there_and_go_with_the_container() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    let bind_of = |id: &str, dest: &str| {
        let spec = e.fakes.world().specs[id].clone();
        spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == dest).cloned()
    };
    let volume = bind_of(&id, "/data").expect("the image volume is bound");
    assert_eq!(volume["source"], format!("/var/lib/crius/containers/{id}/volumes/0"));
    assert_eq!(volume["options"], serde_json::json!(["rbind", "rprivate", "rw"]));
    assert_eq!(e.fakes.world().volumes[&id].len(), 1);

    let mut mounted = config("b");
    mounted.mounts = vec![Mount { container_path: "/data/".into(), host_path: "/h/data".into(), ..Default::default() }];
    let other = e.svc.create(&e.pod_id, mounted).unwrap();
    assert_eq!(bind_of(&other, "/data").unwrap()["source"], "/h/data", "the CRI mount wins");
    assert!(e.fakes.world().volumes[&other].is_empty());

    e.svc.remove(&id).unwrap();
    e.svc.remove(&other).unwrap();
    assert!(e.fakes.world().volumes.is_empty(), "removed with their containers");
}

#[test]
fn target_pid_mode_joins_a_container_of_the_same_pod_only() {
    use crate::sandbox::model::NamespaceMode;
    let e = env();
    e.svc.recover().unwrap();
    let target = e.svc.create(&e.pod_id, config("target")).unwrap();
    e.svc.start(&target).unwrap();
    let pid = e.svc.status(&target).unwrap().record.process.unwrap().pid;
    let joining = |name: &str, target_id: &str| {
        let mut c = config(name);
        c.security.pid_mode = NamespaceMode::Target;
        c.security.target_id = target_id.to_string();
        c
    };

    // Of another pod: refused, before anything of the container is made.
    let other_pod = e.sandboxes.run(pod_config("other")).unwrap();
    let before = e.fakes.log().len();
    let err = e.svc.create(&other_pod, joining("intruder", &target)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("another pod sandbox") && err.to_string().contains(&target), "{err}");
    assert!(e.fakes.log()[before..].iter().all(|op| !op.starts_with("prepare")), "{:?}", e.fakes.log());
    assert_eq!(e.svc.list(&ContainerFilter::default()).len(), 1);

    // Of the same pod: its PID namespace is joined.
    let id = e.svc.create(&e.pod_id, joining("sidecar", &target)).unwrap();
    let spec = e.fakes.world().specs[&id].clone();
    let pid_ns = spec["linux"]["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == "pid").cloned();
    assert_eq!(pid_ns.unwrap()["path"], format!("/proc/{pid}/ns/pid"));

    // An unknown target is not found; one that has exited cannot be joined.
    assert_eq!(e.svc.create(&e.pod_id, joining("lost", "ffff")).unwrap_err().kind(), ErrorKind::NotFound);
    e.fakes.exit(&target, 0);
    let err = e.svc.create(&e.pod_id, joining("late", &target)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[test]
fn create_checks_pod_image_name_and_privilege() {
    let e = env();
    assert_eq!(e.svc.create("ffff", config("a")).unwrap_err().kind(), ErrorKind::NotFound);
    let mut missing = config("a");
    missing.image = "127.0.0.1:5000/nope:1".into();
    let err = e.svc.create(&e.pod_id, missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("pull it first"), "{err}");
    let mut privileged = config("a");
    privileged.security.privileged = true;
    assert_eq!(e.svc.create(&e.pod_id, privileged).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut escaping = config("a");
    escaping.log_path = "../../etc/x.log".into();
    assert_eq!(e.svc.create(&e.pod_id, escaping).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut unnamed = config("a");
    unnamed.metadata.name.clear();
    assert_eq!(e.svc.create(&e.pod_id, unnamed).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    let err = e.svc.create(&e.pod_id, config("a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains(&id));
    e.sandboxes.stop(&e.pod_id).unwrap();
    assert_eq!(e.svc.create(&e.pod_id, config("b")).unwrap_err().kind(), ErrorKind::FailedPrecondition);
    assert!(e.fakes.log().iter().all(|l| !l.starts_with("prepare") || l.contains(&id[..6])));
}

#[test]
fn mount_sources_are_prepared_after_their_paths_are_checked() {
    let e = env();
    let bind = |host: &str| Mount { container_path: "/data".into(), host_path: host.into(), ..Default::default() };
    let mut c = config("a");
    c.mounts = vec![bind("/srv/data")];
    e.svc.create(&e.pod_id, c).unwrap();
    assert_eq!(e.fakes.world().mount_sources, ["/srv/data"]);

    // A relative host path is refused before anything is made of it on the host (it would be
    // created relative to the daemon's working directory), or of the container.
    let calls = e.fakes.log().len();
    let mut c = config("b");
    c.mounts = vec![bind("srv/data")];
    let err = e.svc.create(&e.pod_id, c).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("mounts[0].host_path"), "{err}");
    assert_eq!(e.fakes.log()[calls..], [] as [String; 0], "no port was called");
}

#[test]
fn verbose_status_has_the_runtime_spec() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("app")).unwrap();
    let view = e.svc.status(&id).unwrap();
    let info: serde_json::Value = serde_json::from_str(&e.svc.verbose_info(&view)).unwrap();
    assert_eq!(info["id"], id.as_str());
    let spec = &info["runtimeSpec"];
    assert_eq!(spec, &e.fakes.world().specs[&id], "the bundle's config.json, as JSON");
    assert_eq!(spec["process"]["args"][0], "sh", "{spec}");

    // A spec that cannot be read leaves the key out, not the status.
    e.fakes.fail_once("read_spec");
    let info: serde_json::Value = serde_json::from_str(&e.svc.verbose_info(&view)).unwrap();
    assert_eq!(info["id"], id.as_str());
    assert!(info.get("runtimeSpec").is_none(), "{info}");
}

#[test]
fn start_only_from_created() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.svc.start(&id).unwrap();
    assert_eq!(e.svc.start(&id).unwrap_err().kind(), ErrorKind::FailedPrecondition);
}

#[test]
fn a_failed_start_leaves_an_exited_container() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.fakes.fail_once("start_container");
    assert!(e.svc.start(&id).is_err());
    let view = e.svc.status(&id).unwrap();
    assert_eq!(view.state(), ContainerState::Exited);
    assert!(view.record.exit.unwrap().message.contains("start failed"));
}

fn step_names(timeline: &[crate::sandbox::model::StepTiming]) -> Vec<&str> {
    timeline.iter().map(|s| s.step.as_str()).collect()
}

const CREATE_STEPS: [&str; 10] = [
    "lock_pod",
    "lookup",
    "reserve",
    "state_creating",
    "hold_layers",
    "rootfs",
    "volumes",
    "spec",
    "runtime_create",
    "state_created",
];

#[test]
fn create_then_start_make_one_contiguous_timeline_that_is_on_record() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    let created = e.svc.status(&id).unwrap().record.timeline;
    assert_eq!(step_names(&created), CREATE_STEPS);
    // Amended after the Created save, with that save's own step.
    assert_eq!(e.fakes.world().records[&id].timeline, created);
    assert_eq!(e.fakes.log().iter().filter(|l| l.starts_with("amend ")).count(), 1);
    for pair in created.windows(2) {
        assert_eq!(pair[1].start_us, pair[0].start_us + pair[0].duration_us, "contiguous: {created:?}");
    }

    e.svc.start(&id).unwrap();
    let started = e.svc.status(&id).unwrap().record.timeline;
    let mut all = CREATE_STEPS.to_vec();
    all.extend(["lock", "runtime_start", "state_running"]);
    assert_eq!(step_names(&started), all);
    assert_eq!(started[..CREATE_STEPS.len()], created[..], "create's steps stay as they were");
    let created_end = created.last().map(|s| s.start_us + s.duration_us).unwrap();
    assert!(started[CREATE_STEPS.len()].start_us >= created_end, "start's steps come after: {started:?}");
    for pair in started[CREATE_STEPS.len()..].windows(2) {
        assert_eq!(pair[1].start_us, pair[0].start_us + pair[0].duration_us, "contiguous: {started:?}");
    }
    assert_eq!(e.fakes.world().records[&id].timeline, started, "the whole timeline is on record");
    assert_eq!(e.fakes.world().records[&id].state, ContainerState::Running);
}

#[test]
fn a_failed_start_keeps_its_runtime_step_on_record() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.fakes.fail_once("start_container");
    e.svc.start(&id).unwrap_err();
    let names = step_names(&e.fakes.world().records[&id].timeline).into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(names[CREATE_STEPS.len()..], ["lock", "runtime_start"]);
}

#[test]
fn exits_arrive_through_the_watcher() {
    let e = env();
    e.svc.recover().unwrap();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.svc.start(&id).unwrap();
    e.fakes.exit(&id, 0);
    let view = e.svc.status(&id).unwrap();
    assert_eq!(view.state(), ContainerState::Exited);
    assert_eq!(view.reason(), "Completed");
    // A second delivery of the same record changes nothing.
    e.fakes.exit(&id, 3);
    assert_eq!(e.svc.status(&id).unwrap().record.exit.unwrap().exit_code, 0);
}

#[test]
fn stop_escalates_to_sigkill() {
    let e = env();
    let mut c = config("a");
    c.image = IMAGE.into();
    e.fakes.add_image(
        "127.0.0.1:5000/test/stubborn:1",
        ImageConfigInfo { cmd: vec!["sh".into()], stop_signal: "SIGUSR2".into(), ..Default::default() },
    );
    c.image = "127.0.0.1:5000/test/stubborn:1".into();
    let id = e.svc.create(&e.pod_id, c).unwrap();
    e.svc.start(&id).unwrap();
    e.svc.stop(&id, 1).unwrap();
    let signals: Vec<i32> = e.fakes.world().signals.iter().map(|(_, s)| *s).collect();
    assert_eq!(signals, [12, 9]);
    assert_eq!(e.svc.status(&id).unwrap().record.exit.unwrap().exit_code, 137);
}

#[test]
fn pod_stop_and_remove_reach_the_containers() {
    let e = env();
    let a = e.svc.create(&e.pod_id, config("a")).unwrap();
    let b = e.svc.create(&e.pod_id, config("b")).unwrap();
    e.svc.start(&a).unwrap();
    e.sandboxes.stop(&e.pod_id).unwrap();
    assert_eq!(e.svc.status(&a).unwrap().state(), ContainerState::Exited);
    assert_eq!(e.svc.status(&b).unwrap().state(), ContainerState::Exited);
    e.sandboxes.remove(&e.pod_id).unwrap();
    assert!(e.svc.list(&ContainerFilter::default()).is_empty());
    assert!(e.fakes.is_empty());
    assert!(e.pods.is_empty());
}

#[test]
fn exec_sync_and_reopen_need_a_running_container() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    let cmd = vec!["echo".to_string(), "hi".to_string()];
    assert_eq!(e.svc.exec_sync(&id, &cmd, 1).unwrap_err().kind(), ErrorKind::FailedPrecondition);
    assert_eq!(e.svc.reopen_log(&id).unwrap_err().kind(), ErrorKind::FailedPrecondition);
    e.svc.start(&id).unwrap();
    e.fakes.world().exec = Some(ExecOutput { exit_code: 2, stdout: b"hi\n".to_vec(), ..Default::default() });
    let out = e.svc.exec_sync(&id, &cmd, 1).unwrap();
    assert_eq!((out.exit_code, out.stdout.as_slice()), (2, &b"hi\n"[..]));
    assert_eq!(e.svc.exec_sync(&id, &[], 1).unwrap_err().kind(), ErrorKind::InvalidArgument);
    e.svc.reopen_log(&id).unwrap();
}

#[test]
fn reopen_of_a_container_that_has_just_exited_is_a_precondition_failure() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.svc.start(&id).unwrap();
    // The monitor fails the reopen for another reason: its error, as it is.
    e.fakes.fail_once("reopen_log");
    assert_eq!(e.svc.reopen_log(&id).unwrap_err().kind(), ErrorKind::Internal);
    // It exited and its monitor wrote the record, but the watcher has not delivered it yet: the
    // monitor, which has forgotten the container, refuses the reopen.
    let exit = ContainerExit { container_id: id.clone(), exit_code: 3, finished_at_ns: 1, ..Default::default() };
    e.fakes.world().exits.insert(id.clone(), exit);
    e.fakes.fail_once("reopen_log");
    let err = e.svc.reopen_log(&id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("not running"), "{err}");
    let st = e.svc.status(&id).unwrap();
    assert_eq!((st.state(), st.record.exit.map(|x| x.exit_code)), (ContainerState::Exited, Some(3)));
}

#[test]
fn update_resources_clamps_oom_score_adj_and_is_recorded() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    let wanted = Resources { memory_limit_bytes: 64 << 20, oom_score_adj: -999, ..Default::default() };
    e.svc.update_resources(&id, wanted).unwrap();
    let applied = e.fakes.world().updated.last().cloned().unwrap();
    // This host accounts no swap: no memory+swap limit, which the runtime could not write.
    let memory = applied.memory().unwrap();
    assert_eq!((memory.limit(), memory.swap()), (Some(64 << 20), None));
    assert!(applied.cpu().is_none() && applied.devices().is_none(), "{applied:?}");
    let recorded = e.svc.status(&id).unwrap().record.resources.unwrap();
    assert_eq!((recorded.memory_limit_bytes, recorded.oom_score_adj), (64 << 20, -500));
}

#[test]
fn update_resources_converts_as_create_does() {
    let host = HostCaps { swap: true, hugepage_sizes: vec!["2MB".into()], ..Default::default() };
    let e = env_with(host.clone());
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    let mut wanted = Resources { memory_limit_bytes: 64 << 20, cpu_shares: 256, ..Default::default() };
    wanted.hugepage_limits.insert("2MB".into(), 4 << 20);
    e.svc.update_resources(&id, wanted.clone()).unwrap();
    let applied = e.fakes.world().updated.last().cloned().unwrap();
    let created = crate::spec::resources::linux_resources(Some(&wanted), vec![], &host).unwrap();
    assert_eq!(applied.memory(), created.memory(), "swap accounted: memory+swap = memory, as at create");
    assert_eq!(applied.memory().unwrap().swap(), Some(64 << 20));
    assert_eq!((applied.cpu(), applied.hugepage_limits()), (created.cpu(), created.hugepage_limits()));
}

#[test]
fn bad_update_is_refused_and_changes_nothing() {
    let e = env();
    let mut first = config("a");
    first.resources = Some(Resources { memory_limit_bytes: 32 << 20, ..Default::default() });
    let id = e.svc.create(&e.pod_id, first).unwrap();
    let with = |f: fn(&mut Resources)| {
        let mut r = Resources { memory_limit_bytes: 64 << 20, ..Default::default() };
        f(&mut r);
        r
    };
    let cases = [
        (with(|r| r.cpu_shares = -2), "cpu_shares"),
        (with(|r| r.memory_limit_bytes = -1), "memory_limit_in_bytes"),
        (with(|r| r.memory_swap_limit_bytes = -2), "memory_swap_limit_in_bytes"),
        (with(|r| r.memory_swap_limit_bytes = 1 << 20), "memory_swap_limit_in_bytes"),
        (with(|r| r.oom_score_adj = 1001), "oom_score_adj"),
        (with(|r| _ = r.unified.insert("memory.high".into(), "1".into())), "cgroup v1"),
        (with(|r| _ = r.hugepage_limits.insert("1GB".into(), 1 << 30)), "\"1GB\""),
    ];
    for (bad, says) in cases {
        let err = e.svc.update_resources(&id, bad.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}: {err}");
        assert!(err.to_string().contains(says) && err.to_string().contains(&id), "{bad:?}: {err}");
    }
    assert!(e.fakes.world().updated.is_empty(), "nothing reached the runtime");
    let recorded = e.svc.status(&id).unwrap().record.resources.unwrap();
    assert_eq!(recorded.memory_limit_bytes, 32 << 20, "the record is unchanged");
}

#[test]
fn list_filters() {
    let e = env();
    let a = e.svc.create(&e.pod_id, config("a")).unwrap();
    let b = e.svc.create(&e.pod_id, config("b")).unwrap();
    e.svc.start(&b).unwrap();
    let ids = |f: ContainerFilter| -> Vec<String> { e.svc.list(&f).into_iter().map(|v| v.record.id).collect() };
    assert_eq!(ids(ContainerFilter::default()).len(), 2);
    assert_eq!(ids(ContainerFilter { state: Some(ContainerState::Running), ..Default::default() }), vec![b.clone()]);
    assert_eq!(ids(ContainerFilter { id: Some(a[..20].to_string()), ..Default::default() }), vec![a.clone()]);
    let by_label = ContainerFilter { labels: BTreeMap::from([("app".into(), "a".into())]), ..Default::default() };
    assert_eq!(ids(by_label), vec![a.clone()]);
    assert_eq!(ids(ContainerFilter { pod_id: Some(e.pod_id[..10].to_string()), ..Default::default() }).len(), 2);
    assert!(ids(ContainerFilter { pod_id: Some("0000".into()), ..Default::default() }).is_empty());
}

#[test]
fn recovery_settles_exits_that_happened_while_down() {
    let e = env();
    let a = e.svc.create(&e.pod_id, config("a")).unwrap();
    let b = e.svc.create(&e.pod_id, config("b")).unwrap();
    let c = e.svc.create(&e.pod_id, config("c")).unwrap();
    for id in [&a, &b, &c] {
        e.svc.start(id).unwrap();
    }
    // While crius is down: a exits and its monitor records it; b's process vanishes unrecorded.
    {
        let mut w = e.fakes.world();
        let pid_b = w.records[&b].process.unwrap().pid;
        w.alive.remove(&pid_b);
    }
    e.fakes.exit(&a, 7);
    let svc2 = Arc::new(ContainerService::new(e.fakes.ports(), e.sandboxes.clone(), e.svc.options.clone()));
    let report = svc2.recover().unwrap();
    assert_eq!((report.running, report.exited), (1, 2));
    assert_eq!(svc2.status(&a).unwrap().record.exit.unwrap().exit_code, 7);
    let b_exit = svc2.status(&b).unwrap().record.exit.unwrap();
    assert_eq!(b_exit.exit_code, 255);
    assert!(b_exit.message.contains("monitor"), "{}", b_exit.message);
    assert_eq!(svc2.status(&c).unwrap().state(), ContainerState::Running);
    // Names survive the restart.
    assert_eq!(svc2.create(&e.pod_id, config("a")).unwrap_err().kind(), ErrorKind::AlreadyExists);
}

#[test]
fn recovery_undoes_an_interrupted_create() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    {
        let mut w = e.fakes.world();
        if let Some(r) = w.records.get_mut(&id) {
            r.state = ContainerState::Creating;
        }
    }
    let svc2 = Arc::new(ContainerService::new(e.fakes.ports(), e.sandboxes.clone(), e.svc.options.clone()));
    let report = svc2.recover().unwrap();
    assert_eq!(report.undone, vec![id.clone()]);
    assert!(e.fakes.world().records.is_empty());
    assert!(e.fakes.world().rootfs.is_empty());
    assert!(e.fakes.world().holds.is_empty());
}

#[test]
fn a_dead_pod_takes_its_containers_down_with_a_reason() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.svc.start(&id).unwrap();
    e.svc.pod_died(&e.pod_id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while e.svc.status(&id).unwrap().state() != ContainerState::Exited && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let view = e.svc.status(&id).unwrap();
    assert_eq!(view.state(), ContainerState::Exited);
    // The fake monitor recorded the SIGKILL; the real one may be gone, then the reason says so.
    assert_eq!(view.record.exit.unwrap().exit_code, 137);
}

#[test]
fn an_exit_during_start_is_reported_after_started() {
    let e = env();
    e.svc.recover().unwrap();
    let mut events = e.svc.subscribe_events();
    let id = e.svc.create(&e.pod_id, config("quick")).unwrap();
    // What a container that exits at once does: its exit record arrives while StartContainer
    // is still under way.
    e.svc.begin_start(&id);
    e.fakes.exit(&id, 0);
    assert_eq!(e.svc.status(&id).unwrap().state(), ContainerState::Exited);
    e.svc.end_start(&id, &e.pod_id, true);
    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|ev| ev.kind).collect();
    use ContainerEventKind::*;
    assert_eq!(kinds, [Created, Started, Stopped]);
    // A start that ends without starting anything reports the held-back exit to its caller.
    let id = e.svc.create(&e.pod_id, config("failed")).unwrap();
    e.svc.begin_start(&id);
    e.fakes.exit(&id, 1);
    assert!(e.svc.end_start(&id, &e.pod_id, false));
    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|ev| ev.kind).collect();
    assert_eq!(kinds, [Created], "the caller sends STOPPED");
}

#[test]
fn recovery_kills_a_live_container_whose_pod_died_while_down() {
    let e = env();
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    e.svc.start(&id).unwrap();
    let pid = e.svc.status(&id).unwrap().record.process.unwrap().pid;
    // While crius was down the pod's monitor and init died; the container (in a PID namespace
    // of its own) lives on, and nobody would ever record its exit.
    e.sandboxes.pods().find(&e.pod_id).unwrap().unwrap().mark_process_exited();
    let svc2 = Arc::new(ContainerService::new(e.fakes.ports(), e.sandboxes.clone(), e.svc.options.clone()));
    let report = svc2.recover().unwrap();
    assert_eq!((report.running, report.exited), (0, 1));
    let view = svc2.status(&id).unwrap();
    assert_eq!(view.state(), ContainerState::Exited);
    assert!(view.record.exit.unwrap().message.contains("monitor"));
    assert!(e.fakes.world().signals.contains(&(pid, 9)), "the container was killed");
    assert!(!e.fakes.world().alive.contains(&pid));
}

#[test]
fn pod_and_container_events_share_one_stream_in_order() {
    let e = env();
    let mut events = e.svc.subscribe_events();
    let pod = e.sandboxes.run(pod_config("events")).unwrap();
    let id = e.svc.create(&pod, config("app")).unwrap();
    e.svc.start(&id).unwrap();
    e.sandboxes.stop(&pod).unwrap();
    e.sandboxes.remove(&pod).unwrap();
    let got: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|ev| {
            assert_eq!(ev.pod_id, pod);
            // Only the pod's own events carry the pod.
            assert_eq!(ev.pod.is_some(), ev.container_id == pod, "{ev:?}");
            (ev.container_id == pod, ev.kind)
        })
        .collect();
    use ContainerEventKind::*;
    let (p, c) = (true, false);
    assert_eq!(
        got,
        [
            (p, Created),
            (p, Started),
            (c, Created),
            (c, Started),
            (c, Stopped),
            (p, Stopped),
            (c, Deleted),
            (p, Deleted)
        ]
    );
}

fn apparmor_env() -> Env {
    env_with(HostCaps { apparmor: true, bounding_capabilities: vec!["CAP_CHOWN".into()], ..Default::default() })
}

fn apparmor_profile_of(e: &Env, id: &str) -> Option<String> {
    e.fakes.world().specs[id]["process"]["apparmorProfile"].as_str().map(String::from)
}

fn count(log: &[String], op: &str) -> usize {
    log.iter().filter(|l| l.split(' ').next() == Some(op)).count()
}

#[test]
fn the_default_apparmor_profile_is_loaded_at_start_where_apparmor_is_enabled() {
    let e = apparmor_env();
    assert!(e.svc.load_default_apparmor_profile().unwrap());
    assert!(e.fakes.world().apparmor_profiles.contains(crate::spec::apparmor::DEFAULT_PROFILE));
    // Loaded once: a second start finds it there.
    assert!(e.svc.load_default_apparmor_profile().unwrap());
    assert_eq!(count(&e.fakes.log(), "apparmor_load"), 1);

    let off = env();
    assert!(!off.svc.load_default_apparmor_profile().unwrap());
    assert_eq!(count(&off.fakes.log(), "apparmor_is_loaded"), 0, "no AppArmor, no look");
}

#[test]
fn runtime_default_runs_under_crius_default_loading_it_if_it_went_missing() {
    let e = apparmor_env();
    let first = e.svc.create(&e.pod_id, config("a")).unwrap();
    assert_eq!(apparmor_profile_of(&e, &first).as_deref(), Some("crius-default"));
    let second = e.svc.create(&e.pod_id, config("b")).unwrap();
    assert_eq!(apparmor_profile_of(&e, &second).as_deref(), Some("crius-default"));
    assert_eq!(count(&e.fakes.log(), "apparmor_load"), 1, "{:?}", e.fakes.log());
    let mut unconfined = config("c");
    unconfined.security.apparmor.kind = super::model::ProfileKind::Unconfined;
    let id = e.svc.create(&e.pod_id, unconfined).unwrap();
    assert_eq!(apparmor_profile_of(&e, &id), None);
}

#[test]
fn a_default_profile_that_cannot_be_loaded_fails_runtime_default_clearly() {
    let e = apparmor_env();
    e.fakes.fail_once("apparmor_load");
    let err = e.svc.create(&e.pod_id, config("a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let msg = err.to_string();
    assert!(msg.contains("\"crius-default\"") && msg.contains("injected fault") && msg.contains("Unconfined"), "{msg}");
    assert!(e.fakes.is_empty(), "nothing made: {:?}", e.fakes.log());
    // Not a silent unconfined run, and not a refusal for good: the next create loads it.
    let id = e.svc.create(&e.pod_id, config("a")).unwrap();
    assert_eq!(apparmor_profile_of(&e, &id).as_deref(), Some("crius-default"));
}

#[test]
fn a_localhost_apparmor_profile_must_be_loaded() {
    let e = apparmor_env();
    let mut c = config("a");
    c.security.apparmor =
        super::model::SecurityProfile { kind: super::model::ProfileKind::Localhost, localhost_ref: "k8s-nginx".into() };
    let err = e.svc.create(&e.pod_id, c.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("\"k8s-nginx\"") && err.to_string().contains("not loaded"), "{err}");
    assert_eq!(count(&e.fakes.log(), "apparmor_load"), 0, "crius loads only its own profile");
    e.fakes.world().apparmor_profiles.insert("k8s-nginx".into());
    let id = e.svc.create(&e.pod_id, c).unwrap();
    assert_eq!(apparmor_profile_of(&e, &id).as_deref(), Some("k8s-nginx"));
}

#[test]
fn with_selinux_the_containers_of_a_pod_share_its_level() {
    let e = env_with(HostCaps { selinux: true, bounding_capabilities: vec!["CAP_CHOWN".into()], ..Default::default() });
    let label = |id: &str| e.fakes.world().specs[id]["process"]["selinuxLabel"].as_str().map(String::from);
    let level = e.sandboxes.status(&e.pod_id).unwrap().record.selinux_level.unwrap();
    let a = e.svc.create(&e.pod_id, config("a")).unwrap();
    let b = e.svc.create(&e.pod_id, config("b")).unwrap();
    assert_eq!(label(&a), Some(format!("system_u:system_r:container_t:{level}")));
    assert_eq!(label(&a), label(&b));
    assert_eq!(
        e.fakes.world().specs[&a]["linux"]["mountLabel"].as_str(),
        Some(format!("system_u:object_r:container_file_t:{level}").as_str())
    );
    let other = e.sandboxes.run(pod_config("other")).unwrap();
    let c = e.svc.create(&other, config("c")).unwrap();
    assert_ne!(label(&c), label(&a), "another pod, another level");
}

#[test]
fn with_selinux_what_the_container_mounts_gets_its_mount_label_first() {
    let e = env_with(HostCaps { selinux: true, bounding_capabilities: vec!["CAP_CHOWN".into()], ..Default::default() });
    let level = e.sandboxes.status(&e.pod_id).unwrap().record.selinux_level.unwrap();
    let files = e.sandboxes.pod_file_paths(&e.pod_id);
    let mut c = config("a");
    c.mounts = vec![
        Mount {
            container_path: "/cache".into(),
            host_path: "/srv/cache".into(),
            selinux_relabel: true,
            ..Default::default()
        },
        Mount { container_path: "/ro".into(), host_path: "/srv/ro".into(), ..Default::default() },
    ];
    let id = e.svc.create(&e.pod_id, c).unwrap();
    let w = e.fakes.world();
    let label = format!("system_u:object_r:container_file_t:{level}");
    let paths: Vec<&str> = w
        .relabels
        .iter()
        .map(|(p, l)| {
            assert_eq!(l, &label, "{p}");
            p.as_str()
        })
        .collect();
    let volume = &w.volumes[&id][0].host_path;
    assert_eq!(paths, ["/srv/cache", volume.as_str(), &files.hostname, &files.hosts, &files.resolv_conf, &files.shm]);
    drop(w);
    let log = e.fakes.log();
    let last_relabel = log.iter().rposition(|l| l.starts_with("relabel")).unwrap();
    let spec = log.iter().position(|l| l.starts_with("write_spec")).unwrap();
    assert!(last_relabel < spec, "the labels come before the container can see its files: {log:?}");

    // A relabel that fails fails the create, which undoes what it made.
    let before = e.fakes.world().relabels.len();
    e.fakes.fail_nth("relabel", 1);
    let err = e.svc.create(&e.pod_id, config("b")).unwrap_err();
    assert!(err.to_string().contains("SELinux label") && err.to_string().contains("injected fault"), "{err}");
    assert_eq!(e.svc.list(&ContainerFilter::default()).len(), 1);
    assert_eq!(e.fakes.world().relabels.len(), before + 1);

    // A node directory is refused before anything is relabelled.
    let mut c = config("c");
    c.mounts = vec![Mount {
        container_path: "/x".into(),
        host_path: "/etc".into(),
        selinux_relabel: true,
        ..Default::default()
    }];
    let err = e.svc.create(&e.pod_id, c).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(e.fakes.world().relabels.len(), before + 1);
}

#[test]
fn without_selinux_nothing_is_relabelled() {
    let e = env();
    let mut c = config("a");
    c.mounts = vec![Mount {
        container_path: "/x".into(),
        host_path: "/etc".into(),
        selinux_relabel: true,
        ..Default::default()
    }];
    e.svc.create(&e.pod_id, c).unwrap();
    assert!(e.fakes.world().relabels.is_empty());
}
