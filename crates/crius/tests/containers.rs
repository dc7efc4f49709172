//! Containers end to end, through the CRI client only, against a real daemon, real runc, real
//! monitors and a real registry on loopback (run as root). Each test has its own daemon on its
//! own temp dirs, so they run in parallel; the registry and its images are shared by the whole
//! test binary (built and pushed once). Each test ends by removing its pods and asserting that
//! nothing leaked.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crius_testkit::cri::{self, ContainerState};
use crius_testkit::image_builder::{Layer, catalog};
use crius_testkit::shared_registry::SharedRegistry;
use crius_testkit::tonic::{Code, Status};
use crius_testkit::{PodConfigExt, TestDaemon, host, pod_config, tokio};

const BIN: &str = env!("CARGO_BIN_EXE_crius");

/// How long a container that should end by itself may take.
const EXIT_WAIT: Duration = Duration::from_secs(20);

/// The images every test pulls from, pushed once per test binary.
static REG: LazyLock<SharedRegistry> = LazyLock::new(|| {
    SharedRegistry::start(vec![
        ("busybox", catalog::busybox()),
        ("full", catalog::full_config()),
        ("user-name", catalog::user_name()),
        ("groups", groups_image()),
        ("volume", volume_image()),
    ])
    .unwrap_or_else(|e| panic!("the shared registry did not start: {e}"))
});

/// busybox where the user `app` (1000) is also a member of wheel (10) and staff (50).
fn groups_image() -> crius_testkit::image_builder::ImageBuilder {
    catalog::busybox().layer(Layer::new().file(
        "etc/group",
        b"root:x:0:\nwheel:x:10:app\nstaff:x:50:other,app\napp:x:1000:\nnogroup:x:65534:\n",
        0o644,
    ))
}

/// The mtimes of the volume image's `/data` and `/data/seed`: long past, so a copy that sets
/// none shows.
const DATA_MTIME: i64 = 1_000_000_000;
const SEED_MTIME: i64 = 1_100_000_000;

/// The image with `VOLUME /data`, with a file there to seed the volume with; both have an old
/// mtime and xattrs, which the volume's copy keeps.
fn volume_image() -> crius_testkit::image_builder::ImageBuilder {
    catalog::full_config().layer(
        Layer::new()
            .dir("data", 0o755)
            .mtime("data", DATA_MTIME as u64)
            .xattr("data", "user.crius.dir", b"data")
            .file("data/seed", b"from the image\n", 0o644)
            .mtime("data/seed", SEED_MTIME as u64)
            .xattr("data/seed", "user.crius.origin", b"image")
            .xattr("data/seed", "trusted.crius.origin", b"image, root only"),
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

// ---- request builders ----

/// A container config: `name`, `image`, a log file named after it, Linux settings present.
fn ctr(name: &str, image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.to_string(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.to_string(), ..Default::default() }),
        log_path: format!("{name}/0.log"),
        linux: Some(cri::LinuxContainerConfig {
            resources: None,
            security_context: Some(cri::LinuxContainerSecurityContext::default()),
        }),
        ..Default::default()
    }
}

/// `ctr` running `/bin/sh -c script`.
fn sh(name: &str, image: &str, script: &str) -> cri::ContainerConfig {
    cmd(name, image, &["/bin/sh", "-c", script])
}

fn cmd(name: &str, image: &str, argv: &[&str]) -> cri::ContainerConfig {
    let mut c = ctr(name, image);
    c.command = argv.iter().map(|s| s.to_string()).collect();
    c
}

fn security(c: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerSecurityContext {
    c.linux.get_or_insert_with(Default::default).security_context.get_or_insert_with(Default::default)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- the CRI log format ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct LogLine {
    stream: String,
    partial: bool,
    content: String,
}

/// Parses a CRI log file: `<RFC3339Nano> <stdout|stderr> <F|P> <content>` per line.
fn parse_log(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap_or_default();
            let stream = parts.next().unwrap_or_default();
            let tag = parts.next().unwrap_or_default();
            let content = parts.next().unwrap_or_default();
            assert!(
                ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "not an RFC 3339 timestamp in the CRI log line {l:?}"
            );
            assert!(stream == "stdout" || stream == "stderr", "bad stream in the CRI log line {l:?}");
            assert!(tag == "F" || tag == "P", "bad tag in the CRI log line {l:?}");
            LogLine { stream: stream.to_string(), partial: tag == "P", content: content.to_string() }
        })
        .collect()
}

fn read_log(path: &str) -> Vec<LogLine> {
    parse_log(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading the container log {path}: {e}")))
}

/// The stdout of a container's log, one entry per line.
fn stdout_lines(path: &str) -> Vec<String> {
    read_log(path).into_iter().filter(|l| l.stream == "stdout").map(|l| l.content).collect()
}

// ---- the harness around one daemon ----

struct Pod {
    id: String,
    config: cri::PodSandboxConfig,
}

/// One test's daemon, with helpers that panic with the daemon's log on failure.
struct T {
    td: TestDaemon,
    logs: PathBuf,
}

impl T {
    async fn start() -> T {
        Self::with(TestDaemon::builder()).await
    }

    async fn with(builder: crius_testkit::TestDaemonBuilder) -> T {
        // Build and push the images before the daemon starts (once per test binary).
        let _ = REG.host();
        let td = builder.start(BIN).await.unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
        let logs = td.base().join("pod-logs");
        T { td, logs }
    }

    fn rt(&self) -> crius_testkit::RuntimeServiceClient<crius_testkit::Channel> {
        self.td.runtime()
    }

    fn fail(&self, what: &str, s: &Status) -> ! {
        panic!("{what}: {:?}: {}\n{}\n{}", s.code(), s.message(), self.td.log_tail(60), self.td.monitor_logs(30))
    }

    /// Pulls the shared registry's image `key`; returns its reference.
    async fn pull(&self, key: &str) -> String {
        let image = REG.reference(key);
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
            auth: None,
            sandbox_config: None,
        };
        match self.td.image().pull_image(req).await {
            Ok(r) => assert_eq!(r.into_inner().image_ref, REG.image_id(key)),
            Err(s) => self.fail(&format!("PullImage {image}"), &s),
        }
        image
    }

    /// A pod config with a log directory under the test dir and a cgroup parent the harness
    /// checks for leftovers.
    fn pod_cfg(&self, name: &str) -> cri::PodSandboxConfig {
        let cfg = pod_config(name).cgroup_parent(&self.td.cgroup_parent());
        let uid = cfg.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default();
        let dir = self.logs.join(format!("{name}_{uid}"));
        cfg.log_directory(&dir.to_string_lossy())
    }

    async fn run_pod(&self, config: cri::PodSandboxConfig) -> Pod {
        match self.td.run_pod(config.clone()).await {
            Ok(id) => Pod { id, config },
            Err(s) => self.fail("RunPodSandbox", &s),
        }
    }

    async fn try_create(&self, pod: &Pod, config: cri::ContainerConfig) -> Result<String, Status> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        Ok(self.rt().create_container(req).await?.into_inner().container_id)
    }

    async fn create(&self, pod: &Pod, config: cri::ContainerConfig) -> String {
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        match self.try_create(pod, config).await {
            Ok(id) => id,
            Err(s) => self.fail(&format!("CreateContainer {name}"), &s),
        }
    }

    async fn start_ctr(&self, id: &str) {
        if let Err(s) = self.rt().start_container(cri::StartContainerRequest { container_id: id.to_string() }).await {
            self.fail(&format!("StartContainer {id}"), &s);
        }
    }

    /// Create and start.
    async fn run(&self, pod: &Pod, config: cri::ContainerConfig) -> String {
        let id = self.create(pod, config).await;
        self.start_ctr(&id).await;
        id
    }

    async fn try_status(&self, id: &str) -> Result<cri::ContainerStatusResponse, Status> {
        let req = cri::ContainerStatusRequest { container_id: id.to_string(), verbose: true };
        Ok(self.rt().container_status(req).await?.into_inner())
    }

    async fn status(&self, id: &str) -> cri::ContainerStatus {
        match self.try_status(id).await {
            Ok(r) => r.status.expect("ContainerStatus has a status"),
            Err(s) => self.fail(&format!("ContainerStatus {id}"), &s),
        }
    }

    /// The verbose info of a container (JSON).
    async fn info(&self, id: &str) -> crius_testkit::serde_json::Value {
        let r = self.try_status(id).await.unwrap_or_else(|s| self.fail("ContainerStatus", &s));
        let info = r.info.get("info").unwrap_or_else(|| panic!("no verbose info for {id}: {:?}", r.info));
        crius_testkit::serde_json::from_str(info).expect("verbose info is JSON")
    }

    /// The container's init pid, from verbose info.
    async fn pid(&self, id: &str) -> i32 {
        let info = self.info(id).await;
        info["pid"].as_i64().unwrap_or_else(|| panic!("no pid in verbose info: {info}")) as i32
    }

    async fn wait_state(&self, id: &str, state: ContainerState, timeout: Duration) -> cri::ContainerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status(id).await;
            if st.state == state as i32 {
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "container {id} not {state:?} within {timeout:?}: {st:?}\n{}\n{}",
                    self.td.log_tail(60),
                    self.td.monitor_logs(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The container's stdout lines, once it has written at least `n`.
    async fn wait_stdout(&self, id: &str, n: usize) -> Vec<String> {
        let path = self.status(id).await.log_path;
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            let lines = stdout_lines(&path);
            if lines.len() >= n {
                return lines;
            }
            if Instant::now() >= deadline {
                panic!("container {id} wrote {lines:?}, not {n} lines, within {EXIT_WAIT:?}\n{}", self.td.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_exited(&self, id: &str) -> cri::ContainerStatus {
        self.wait_state(id, ContainerState::ContainerExited, EXIT_WAIT).await
    }

    /// Runs a container to its end; its status and stdout lines.
    async fn run_to_exit(&self, pod: &Pod, config: cri::ContainerConfig) -> (cri::ContainerStatus, Vec<String>) {
        let id = self.run(pod, config).await;
        let st = self.wait_exited(&id).await;
        let out = stdout_lines(&st.log_path);
        (st, out)
    }

    async fn stop(&self, id: &str, timeout: i64) -> Result<(), Status> {
        self.rt().stop_container(cri::StopContainerRequest { container_id: id.to_string(), timeout }).await?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), Status> {
        self.rt().remove_container(cri::RemoveContainerRequest { container_id: id.to_string() }).await?;
        Ok(())
    }

    async fn exec(&self, id: &str, argv: &[&str], timeout: i64) -> Result<cri::ExecSyncResponse, Status> {
        let req = cri::ExecSyncRequest { container_id: id.to_string(), cmd: strings(argv), timeout };
        Ok(self.rt().exec_sync(req).await?.into_inner())
    }

    async fn list(&self, filter: Option<cri::ContainerFilter>) -> Vec<cri::Container> {
        match self.rt().list_containers(cri::ListContainersRequest { filter }).await {
            Ok(r) => r.into_inner().containers,
            Err(s) => self.fail("ListContainers", &s),
        }
    }

    /// What crius keeps of a container outside the harness's own leak check: the runtime's
    /// state, the exit record and exec scratch files.
    fn container_leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [self.td.state().join("runc"), self.td.state().join("exits"), self.td.state().join("oci")] {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                out.push(format!("leftover {}", e.path().display()));
            }
        }
        out
    }

    /// Removes every pod (and so every container), then asserts that nothing leaked.
    async fn finish(self) {
        if let Err(s) = self.td.remove_all_pods().await {
            self.fail("removing every pod", &s);
        }
        let left = self.list(None).await;
        assert!(left.is_empty(), "containers listed after every pod was removed: {left:?}");
        self.td.assert_no_leaks().await;
        let left = self.container_leftovers();
        assert!(left.is_empty(), "leaked:\n  {}\n{}", left.join("\n  "), self.td.log_tail(40));
    }
}

fn ids(containers: &[cri::Container]) -> BTreeSet<String> {
    containers.iter().map(|c| c.id.clone()).collect()
}

fn set(v: &[&String]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_exit_code_reason_and_cri_log() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("complete")).await;

    let id = t.run(&pod, sh("fails", &img, "echo out; echo err >&2; exit 3")).await;
    let st = t.wait_exited(&id).await;
    assert_eq!(st.exit_code, 3, "{st:?}");
    assert_eq!(st.reason, "Error", "{st:?}");
    assert!(st.created_at > 0 && st.started_at >= st.created_at, "{st:?}");
    assert!(st.finished_at >= st.started_at, "finished_at is set: {st:?}");
    let expected_log = format!("{}/fails/0.log", pod.config.log_directory);
    assert_eq!(st.log_path, expected_log, "log_path is the pod's log directory joined with the config's log_path");
    let log = read_log(&st.log_path);
    let full = |stream: &str, content: &str| LogLine { stream: stream.into(), partial: false, content: content.into() };
    assert!(log.contains(&full("stdout", "out")), "{log:?}");
    assert!(log.contains(&full("stderr", "err")), "{log:?}");
    assert_eq!(log.len(), 2, "{log:?}");

    let id = t.run(&pod, cmd("succeeds", &img, &["true"])).await;
    let st = t.wait_exited(&id).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"), "{st:?}");

    // A command that is not in the image: the runtime's reason, and nothing is left of it
    // (CRI-O fails here too; containerd, which creates the runtime's container at start, fails
    // StartContainer instead).
    let err = t.try_create(&pod, cmd("no-such-command", &img, &["/no/such/binary"])).await.unwrap_err();
    assert!(err.message().contains("/no/such/binary"), "{:?}: {}", err.code(), err.message());
    assert_eq!(t.list(None).await.len(), 2, "the failed create left no container behind");

    // A line without a newline at the end is logged as partial.
    let id = t.run(&pod, sh("partial", &img, "printf 'no newline'")).await;
    let st = t.wait_exited(&id).await;
    assert_eq!(
        read_log(&st.log_path),
        [LogLine { stream: "stdout".into(), partial: true, content: "no newline".into() }]
    );

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_args_env_and_working_dir() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("full").await;
    let pod = t.run_pod(t.pod_cfg("process")).await;

    // The image's ENTRYPOINT ["/bin/sh","-c"] + CMD, env and WORKDIR: "hello from /work", then sleep.
    let id = t.run(&pod, ctr("image-defaults", &img)).await;
    let deadline = Instant::now() + EXIT_WAIT;
    let log_path = t.status(&id).await.log_path;
    while std::fs::read_to_string(&log_path).unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "no output from the image's entrypoint");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stdout_lines(&log_path), ["hello from /work"]);
    t.stop(&id, 0).await.unwrap();

    // args replace CMD and keep ENTRYPOINT.
    let mut c = ctr("args", &img);
    c.args = strings(&["echo args: $0 $GREETING"]);
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!((st.exit_code, out), (0, vec!["args: /bin/sh hello".to_string()]));

    // command replaces ENTRYPOINT and drops CMD; command + args both used.
    let (_, out) = t.run_to_exit(&pod, cmd("command", &img, &["/bin/echo", "just", "this"])).await;
    assert_eq!(out, ["just this"]);
    let mut c = cmd("command-args", &img, &["/bin/echo"]);
    c.args = strings(&["with", "args"]);
    let (_, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(out, ["with args"]);

    // Env: the image's, then the config's; a later entry of the same key wins.
    let mut c = sh("env", &img, "echo $GREETING $EXTRA $PATH; pwd");
    c.envs = vec![
        cri::KeyValue { key: "GREETING".into(), value: "overridden".into() },
        cri::KeyValue { key: "EXTRA".into(), value: "first".into() },
        cri::KeyValue { key: "EXTRA".into(), value: "second".into() },
    ];
    let (_, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(out, ["overridden second /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "/work"]);

    // working_dir replaces WORKDIR (a directory that does not exist is made by the runtime).
    let mut c = sh("workdir", &img, "pwd");
    c.working_dir = "/tmp/made/by/runtime".into();
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!((st.exit_code, out), (0, vec!["/tmp/made/by/runtime".to_string()]));

    // HOSTNAME is the pod's.
    let (_, out) = t.run_to_exit(&pod, sh("hostname-env", &img, "echo $HOSTNAME")).await;
    assert_eq!(out, std::slice::from_ref(&pod.config.hostname));

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signal_grace_period_and_sigkill() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let full = t.pull("full").await;
    let pod = t.run_pod(t.pod_cfg("stop")).await;

    let trapper =
        t.run(&pod, sh("traps-term", &img, "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done")).await;
    let ignorer = t.run(&pod, sh("ignores-term", &img, "trap '' TERM; echo ready; sleep 1000")).await;
    let usr1 =
        t.run(&pod, sh("traps-usr1", &full, "trap 'exit 10' USR1; echo ready; while :; do sleep 0.1; done")).await;
    let killed = t.run(&pod, cmd("killed", &img, &["sleep", "999"])).await;
    // The traps are set once "ready" is out.
    for id in [&trapper, &ignorer, &usr1] {
        assert_eq!(t.wait_stdout(id, 1).await, ["ready"], "{id}");
    }

    let started = Instant::now();
    t.stop(&trapper, 10).await.unwrap_or_else(|s| t.fail("StopContainer", &s));
    assert!(started.elapsed() < Duration::from_secs(5), "a container that exits on TERM stops at once");
    let st = t.status(&trapper).await;
    assert_eq!((st.state, st.exit_code, st.reason.as_str()), (ContainerState::ContainerExited as i32, 42, "Error"));

    // The image's STOPSIGNAL (SIGUSR1) is what Stop sends first.
    t.stop(&usr1, 10).await.unwrap_or_else(|s| t.fail("StopContainer", &s));
    assert_eq!(t.status(&usr1).await.exit_code, 10);

    // TERM ignored: SIGKILL after the timeout.
    let started = Instant::now();
    t.stop(&ignorer, 2).await.unwrap_or_else(|s| t.fail("StopContainer", &s));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(5), "Stop took {took:?}, timeout 2 s");
    let st = t.status(&ignorer).await;
    assert_eq!((st.state, st.exit_code), (ContainerState::ContainerExited as i32, 137), "{st:?}");
    // Its `sleep 1000` went with it (the pod shares one PID namespace: nothing else kills it).
    assert_gone_from_pod(&t, &killed, "sleep 1000").await;

    // Timeout 0: SIGKILL at once.
    let started = Instant::now();
    t.stop(&killed, 0).await.unwrap_or_else(|s| t.fail("StopContainer", &s));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(t.status(&killed).await.exit_code, 137);

    // Stopping a stopped container is fine; a created one can be stopped too.
    t.stop(&killed, 0).await.unwrap_or_else(|s| t.fail("StopContainer again", &s));
    let created = t.create(&pod, cmd("never-started", &img, &["sleep", "1000"])).await;
    t.stop(&created, 5).await.unwrap_or_else(|s| t.fail("StopContainer of a created container", &s));
    assert_eq!(t.status(&created).await.state, ContainerState::ContainerExited as i32);

    t.finish().await;
}

/// Waits until `ps` in the running container `witness` shows no process whose command is `what`
/// (zombies included).
async fn assert_gone_from_pod(t: &T, witness: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = t.exec(witness, &["ps", "-o", "pid,stat,args"], 5).await.unwrap_or_else(|s| t.fail("ExecSync ps", &s));
        let ps = String::from_utf8_lossy(&r.stdout).into_owned();
        if !ps.lines().any(|l| l.ends_with(what)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what:?} is still in the pod after its container ended:\n{ps}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_rootfs_with_a_writable_emptydir() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("readonly")).await;
    let empty_dir = t.td.base().join("volumes/cache");
    std::fs::create_dir_all(&empty_dir).unwrap();

    let mut c = sh(
        "ro",
        &img,
        "touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly; \
         echo hi > /cache/file && echo cache-writable",
    );
    security(&mut c).readonly_rootfs = true;
    c.mounts = vec![cri::Mount {
        container_path: "/cache".into(),
        host_path: empty_dir.to_string_lossy().into_owned(),
        ..Default::default()
    }];
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(st.exit_code, 0, "{st:?}");
    assert_eq!(out, ["root-readonly", "cache-writable"]);
    assert_eq!(std::fs::read_to_string(empty_dir.join("file")).unwrap(), "hi\n");
    assert_eq!(st.mounts.len(), 1, "ContainerStatus reports the CRI mounts: {:?}", st.mounts);

    // Without readonly_rootfs, / is writable.
    let (_, out) = t
        .run_to_exit(&pod, sh("rw", &img, "touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly"))
        .await;
    assert_eq!(out, ["root-writable"]);

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_volume_is_writable_under_a_readonly_rootfs() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("volume").await;
    let pod = t.run_pod(t.pod_cfg("volumes")).await;
    let script = "cat /data/seed; echo hi > /data/new && echo volume-writable; \
                  touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly; \
                  touch /work/file 2>/dev/null && echo work-writable || echo work-readonly; sleep 1000";
    let mut c = sh("ro", &img, script);
    security(&mut c).readonly_rootfs = true;
    let id = t.run(&pod, c).await;
    let volume = t.td.root().join("containers").join(&id).join("volumes/0");
    let out = t.wait_stdout(&id, 4).await;
    assert_eq!(out, ["from the image", "volume-writable", "root-readonly", "work-readonly"]);
    // The copy keeps the image's mtimes and xattrs (the file's atime changed: it was read).
    let seed = volume.join("seed");
    let xattr = |path: &Path, name: &str| xattr::get(path, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(std::fs::symlink_metadata(&seed).unwrap().mtime(), SEED_MTIME);
    assert_eq!(xattr(&seed, "user.crius.origin").as_deref(), Some(&b"image"[..]));
    assert_eq!(xattr(&seed, "trusted.crius.origin").as_deref(), Some(&b"image, root only"[..]));
    assert_eq!(xattr(&volume, "user.crius.dir").as_deref(), Some(&b"data"[..]));
    assert_eq!(std::fs::read_to_string(volume.join("new")).unwrap(), "hi\n", "the volume is the container's own dir");
    assert!(t.status(&id).await.mounts.is_empty(), "ContainerStatus reports the CRI mounts only");

    // Another container gets a volume of its own, seeded afresh.
    let (st, out) = t.run_to_exit(&pod, sh("other", &img, "ls /data")).await;
    assert_eq!((st.exit_code, out), (0, vec!["seed".to_string()]));
    // Listed, not written: it has the image directory's mtime.
    let other = t.td.root().join("containers").join(&st.id).join("volumes/0");
    assert_eq!(std::fs::symlink_metadata(&other).unwrap().mtime(), DATA_MTIME);

    // A CRI mount at the volume's path wins: no volume is made.
    let host_dir = t.td.base().join("volumes/data");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), b"").unwrap();
    let mut c = sh("mounted", &img, "ls /data");
    c.mounts = vec![cri::Mount {
        container_path: "/data/".into(),
        host_path: host_dir.to_string_lossy().into_owned(),
        ..Default::default()
    }];
    let mounted = t.run(&pod, c).await;
    let st = t.wait_exited(&mounted).await;
    assert_eq!((st.exit_code, stdout_lines(&st.log_path)), (0, vec!["from-host".to_string()]));
    assert!(!t.td.root().join("containers").join(&mounted).join("volumes").exists());

    // The volume goes with its container.
    t.stop(&id, 0).await.unwrap();
    t.remove(&id).await.unwrap();
    assert!(!volume.exists(), "{} is left after RemoveContainer", volume.display());

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_seccomp_profile_missing_or_present() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("seccomp")).await;
    let localhost = |path: &Path| cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Localhost as i32,
        localhost_ref: path.to_string_lossy().into_owned(),
    };
    let dir = t.td.base().join("seccomp");
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.json");
    let mut c = sh("missing", &img, "true");
    security(&mut c).seccomp = Some(localhost(&missing));
    let err = t.try_create(&pod, c).await.unwrap_err();
    assert!(matches!(err.code(), Code::InvalidArgument | Code::NotFound), "{err:?}");
    assert!(err.message().contains(&*missing.to_string_lossy()), "the message names the file: {}", err.message());
    assert!(t.list(None).await.is_empty(), "a refused create leaves no container");

    // The profile at the path is the one applied.
    let deny_mkdir = dir.join("deny-mkdir.json");
    std::fs::write(
        &deny_mkdir,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let mut c = sh("present", &img, "mkdir /tmp/d 2>/dev/null && echo made || echo refused");
    security(&mut c).seccomp = Some(localhost(&deny_mkdir));
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!((st.exit_code, out), (0, vec!["refused".to_string()]));

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_killed_reason_and_exit_code() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("oom")).await;
    const MIB: i64 = 1 << 20;
    // The shell holds the 64 MiB string: over the 16 MiB limit, the OOM killer of the
    // container's cgroup picks it.
    let mut c = sh("hog", &img, r#"x=$(head -c 64m /dev/zero | tr "\0" a); echo survived"#);
    c.linux.as_mut().unwrap().resources =
        Some(cri::LinuxContainerResources { memory_limit_in_bytes: 16 * MIB, ..Default::default() });
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!((st.reason.as_str(), st.exit_code), ("OOMKilled", 137), "{st:?}");
    assert!(out.is_empty(), "{out:?}");

    // A container that ends by itself under the same limit is not.
    let mut c = sh("fine", &img, "exit 3");
    c.linux.as_mut().unwrap().resources =
        Some(cri::LinuxContainerResources { memory_limit_in_bytes: 16 * MIB, ..Default::default() });
    let (st, _) = t.run_to_exit(&pod, c).await;
    assert_eq!((st.reason.as_str(), st.exit_code), ("Error", 3), "{st:?}");

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups() {
    needs_root!();
    let t = T::start().await;
    let busybox = t.pull("busybox").await;
    let groups = t.pull("groups").await;
    let named = t.pull("user-name").await;
    let pod = t.run_pod(t.pod_cfg("users")).await;
    let script = "echo $(id -u) $(id -g); id -G; echo $(id -un 2>/dev/null)";

    async fn identity(
        t: &T,
        pod: &Pod,
        c: cri::ContainerConfig,
    ) -> (u32, u32, BTreeSet<u32>, String, cri::ContainerStatus) {
        let (st, out) = t.run_to_exit(pod, c).await;
        assert_eq!(st.exit_code, 0, "{st:?} {out:?}");
        assert_eq!(out.len(), 3, "{out:?}");
        let mut ug = out[0].split(' ').map(|n| n.parse::<u32>().unwrap());
        let (uid, gid) = (ug.next().unwrap(), ug.next().unwrap());
        let groups = out[1].split(' ').map(|n| n.parse::<u32>().unwrap()).collect();
        (uid, gid, groups, out[2].clone(), st)
    }
    let g = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();

    // Nothing asked, no USER: root.
    let (uid, gid, gs, name, _) = identity(&t, &pod, sh("default", &busybox, script)).await;
    assert_eq!((uid, gid, gs, name.as_str()), (0, 0, g(&[0]), "root"));

    // The image's USER app.
    let (uid, gid, gs, name, st) = identity(&t, &pod, sh("image-user", &named, script)).await;
    assert_eq!((uid, gid, gs, name.as_str()), (1000, 1000, g(&[1000]), "app"));
    let user = st.user.and_then(|u| u.linux).expect("ContainerStatus reports the user");
    assert_eq!((user.uid, user.gid), (1000, 1000));

    // run_as_user + run_as_group + supplemental groups; the image's group memberships of the user too.
    let mut c = sh("uid-gid", &groups, script);
    let sc = security(&mut c);
    sc.run_as_user = Some(cri::Int64Value { value: 1000 });
    sc.run_as_group = Some(cri::Int64Value { value: 3000 });
    sc.supplemental_groups = vec![4000];
    let (uid, gid, gs, _, st) = identity(&t, &pod, c).await;
    assert_eq!((uid, gid, gs), (1000, 3000, g(&[3000, 10, 50, 4000])));
    let user = st.user.and_then(|u| u.linux).expect("ContainerStatus reports the user");
    assert_eq!((user.uid, user.gid), (1000, 3000));
    assert_eq!(user.supplemental_groups.iter().copied().collect::<BTreeSet<i64>>(), [3000, 10, 50, 4000].into());

    // run_as_username, resolved from the image's /etc/passwd; wins over the image's USER.
    let mut c = sh("username", &groups, script);
    security(&mut c).run_as_username = "app".into();
    let (uid, gid, gs, name, _) = identity(&t, &pod, c).await;
    assert_eq!((uid, gid, gs, name.as_str()), (1000, 1000, g(&[1000, 10, 50]), "app"));
    let mut c = sh("root-over-image-user", &named, script);
    security(&mut c).run_as_user = Some(cri::Int64Value { value: 0 });
    let (uid, ..) = identity(&t, &pod, c).await;
    assert_eq!(uid, 0, "run_as_user 0 wins over the image's USER");

    // A uid the image does not know runs with gid 0 (and has no name: busybox prints the number).
    let mut c = sh("unknown-uid", &busybox, script);
    security(&mut c).run_as_user = Some(cri::Int64Value { value: 4321 });
    let (uid, gid, gs, name, _) = identity(&t, &pod, c).await;
    assert_eq!((uid, gid, gs, name.as_str()), (4321, 0, g(&[0]), "4321"));

    // A user name the image does not know is refused at create, naming it.
    let mut c = sh("unknown-name", &busybox, script);
    security(&mut c).run_as_username = "nosuchuser".into();
    let err = t.try_create(&pod, c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("nosuchuser"), "{}", err.message());

    t.finish().await;
}

/// CapEff of /proc/self/status as a number.
fn cap_eff(out: &[String]) -> u64 {
    let line = out.iter().find(|l| l.starts_with("CapEff:")).unwrap_or_else(|| panic!("no CapEff in {out:?}"));
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("caps")).await;
    let script = "grep Cap /proc/self/status";
    // containerd's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    const DEFAULT: u64 = 0xa804_25fb;
    const NET_ADMIN: u64 = 1 << 12;

    let (_, out) = t.run_to_exit(&pod, sh("default", &img, script)).await;
    assert_eq!(cap_eff(&out), DEFAULT, "{out:?}");

    let mut c = sh("net-admin", &img, script);
    security(&mut c).capabilities =
        Some(cri::Capability { add_capabilities: strings(&["NET_ADMIN"]), ..Default::default() });
    let (_, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(cap_eff(&out), DEFAULT | NET_ADMIN, "{out:?}");

    let mut c = sh("none", &img, script);
    security(&mut c).capabilities =
        Some(cri::Capability { drop_capabilities: strings(&["ALL"]), ..Default::default() });
    let (_, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(cap_eff(&out), 0, "{out:?}");

    let mut c = sh("drop-all-add-one", &img, script);
    security(&mut c).capabilities = Some(cri::Capability {
        add_capabilities: strings(&["CAP_NET_ADMIN"]),
        drop_capabilities: strings(&["ALL"]),
        ..Default::default()
    });
    let (_, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(cap_eff(&out), NET_ADMIN, "{out:?}");

    // "ALL" is everything the daemon's bounding set holds (no CAP_SYS_RESOURCE on this machine).
    let own_bounding = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bounding = own_bounding.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let own_bounding = u64::from_str_radix(own_bounding.trim_start_matches("CapBnd:").trim(), 16).unwrap();
    let mut c = sh("all", &img, script);
    security(&mut c).capabilities = Some(cri::Capability { add_capabilities: strings(&["ALL"]), ..Default::default() });
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(st.exit_code, 0);
    assert_eq!(cap_eff(&out), own_bounding, "{out:?}");

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mounts_and_pod_files() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let cfg = t.pod_cfg("mounts").hostname("mounts-host").dns(&["10.9.8.7"], &["example.test"], &["ndots:2"]);
    let pod = t.run_pod(cfg).await;
    let (ro, rw) = (t.td.base().join("volumes/ro"), t.td.base().join("volumes/rw"));
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("existing"), "from the host\n").unwrap();

    let mut c = sh(
        "mounts",
        &img,
        "cat /ro/existing; echo x > /ro/new 2>/dev/null && echo ro-writable || echo ro-readonly; \
         echo y > /rw/new && echo rw-writable; echo hostname=$(cat /etc/hostname) $(hostname); \
         grep -q mounts-host /etc/hosts && echo hosts-has-hostname; cat /etc/resolv.conf",
    );
    let bind = |path: &Path, dest: &str, readonly: bool| cri::Mount {
        container_path: dest.into(),
        host_path: path.to_string_lossy().into_owned(),
        readonly,
        ..Default::default()
    };
    c.mounts = vec![bind(&ro, "/ro", true), bind(&rw, "/rw", false)];
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(st.exit_code, 0, "{st:?} {out:?}");
    assert_eq!(
        out[..5],
        ["from the host", "ro-readonly", "rw-writable", "hostname=mounts-host mounts-host", "hosts-has-hostname"],
        "{out:?}"
    );
    let resolv = out[5..].join("\n");
    assert!(resolv.contains("nameserver 10.9.8.7"), "{resolv}");
    assert!(resolv.contains("search example.test"), "{resolv}");
    assert!(resolv.contains("options ndots:2"), "{resolv}");
    assert!(!ro.join("new").exists());
    assert_eq!(std::fs::read_to_string(rw.join("new")).unwrap(), "y\n");
    let mounts: Vec<(String, bool)> = st.mounts.iter().map(|m| (m.container_path.clone(), m.readonly)).collect();
    assert_eq!(mounts, [("/ro".to_string(), true), ("/rw".to_string(), false)]);

    // A host path that does not exist is created as a directory (mode 0755, parents too), as
    // containerd and CRI-O do for the kubelet's hostPath volumes without a type.
    let missing = t.td.base().join("volumes/nope/deeper");
    let mut c = sh("missing-source", &img, "echo made > /nope/made && echo ok");
    c.mounts = vec![bind(&missing, "/nope", false)];
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!((st.exit_code, out.as_slice()), (0, &["ok".to_string()][..]), "{st:?}");
    for dir in [&missing, &t.td.base().join("volumes/nope")] {
        let meta = std::fs::metadata(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(meta.is_dir(), "{}", dir.display());
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777, 0o755, "{}", dir.display());
    }
    assert_eq!(std::fs::read_to_string(missing.join("made")).unwrap(), "made\n");

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_status_has_the_runtime_spec() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("spec")).await;
    let data = t.td.base().join("volumes/data");
    std::fs::create_dir_all(&data).unwrap();
    let mut c = cmd("inspected", &img, &["sleep", "1000"]);
    c.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: data.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    }];
    let id = t.create(&pod, c).await;

    // What crictl inspect shows: the bundle's config.json, as JSON, from the create on.
    let info = t.info(&id).await;
    let spec = &info["runtimeSpec"];
    let on_disk: crius_testkit::serde_json::Value = crius_testkit::serde_json::from_slice(
        &std::fs::read(Path::new(info["bundle"].as_str().unwrap_or_default()).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec, &on_disk, "runtimeSpec is the bundle's config.json");
    assert_eq!(spec["process"]["args"], crius_testkit::serde_json::json!(["sleep", "1000"]), "{spec}");
    assert_eq!(spec["root"]["path"].as_str().map(|p| p.ends_with("rootfs")), Some(true), "{spec}");
    let mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
    let data_mount = mounts.iter().find(|m| m["destination"] == "/data").unwrap_or_else(|| panic!("{spec}"));
    assert_eq!(data_mount["source"].as_str(), data.to_str());
    assert!(data_mount["options"].as_array().is_some_and(|o| o.iter().any(|x| x == "ro")), "{data_mount}");

    t.start_ctr(&id).await;
    t.wait_state(&id, ContainerState::ContainerRunning, EXIT_WAIT).await;
    assert_eq!(t.info(&id).await["runtimeSpec"], on_disk);
    // Plain status stays without verbose info.
    let req = cri::ContainerStatusRequest { container_id: id.clone(), verbose: false };
    let plain = t.rt().container_status(req).await.unwrap_or_else(|s| t.fail("ContainerStatus", &s)).into_inner();
    assert!(plain.info.is_empty(), "{:?}", plain.info);

    t.finish().await;
}

/// Mounts a test makes on the host, all under one directory: every one of them is unmounted
/// when this drops, also when the test fails half-way.
struct HostMounts {
    dir: PathBuf,
}

impl HostMounts {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        HostMounts { dir }
    }

    fn mount(&self, source: Option<&Path>, target: &Path, fstype: Option<&str>, flags: nix::mount::MsFlags) {
        assert!(target.starts_with(&self.dir), "{} is outside {}", target.display(), self.dir.display());
        nix::mount::mount(source, target, fstype, flags, None::<&str>)
            .unwrap_or_else(|e| panic!("mount {source:?} on {} ({flags:?}): {e}", target.display()));
    }

    /// A directory under `dir` that is a mount point of its own (bound onto itself), with the
    /// given propagation. `/` here is private, so this is how a test gets a shared mount.
    fn dir_with(&self, name: &str, propagation: nix::mount::MsFlags) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).unwrap();
        self.mount(Some(&path), &path, None, nix::mount::MsFlags::MS_BIND);
        self.mount(None, &path, None, propagation);
        path
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        let left = host::unmount_all_under(&self.dir);
        if !left.is_empty() {
            eprintln!("unmounting the test's host mounts under {}:\n  {}", self.dir.display(), left.join("\n  "));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_propagation_from_the_host() {
    use nix::mount::MsFlags;
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("propagation")).await;
    let host_mounts = HostMounts::new(t.td.base().join("propagation"));
    let shared = host_mounts.dir_with("shared", MsFlags::MS_SHARED);
    let private = host_mounts.dir_with("private", MsFlags::MS_PRIVATE);
    // A slave of `shared`: a bind of it (so a peer), then made a slave (it receives, sends nothing).
    let slave = host_mounts.dir.join("slave");
    std::fs::create_dir_all(&slave).unwrap();
    host_mounts.mount(Some(&shared), &slave, None, MsFlags::MS_BIND);
    host_mounts.mount(None, &slave, None, MsFlags::MS_SLAVE);

    let mount = |source: &Path, propagation: cri::MountPropagation| cri::Mount {
        container_path: "/shared".into(),
        host_path: source.to_string_lossy().into_owned(),
        propagation: propagation as i32,
        ..Default::default()
    };
    // Each container waits for a file that only a mount made on the host after it started holds.
    let cases = [
        ("bidirectional", &shared, cri::MountPropagation::PropagationBidirectional, "rshared"),
        ("host-to-container", &shared, cri::MountPropagation::PropagationHostToContainer, "rslave"),
        ("host-to-container-from-a-slave", &slave, cri::MountPropagation::PropagationHostToContainer, "rslave"),
    ];
    for (name, source, propagation, option) in cases {
        let sub = shared.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let script = format!(
            "i=0; while [ ! -e /shared/{name}/marker ]; do i=$((i+1)); [ $i -gt 300 ] && echo not-seen && exit 1; \
             sleep 0.1; done; cat /shared/{name}/marker"
        );
        let mut c = sh(name, &img, &script);
        c.mounts = vec![mount(source, propagation)];
        let id = t.run(&pod, c).await;
        t.wait_state(&id, ContainerState::ContainerRunning, EXIT_WAIT).await;
        let spec = t.info(&id).await["runtimeSpec"].clone();
        let spec_mount = spec["mounts"].as_array().and_then(|ms| ms.iter().find(|m| m["destination"] == "/shared"));
        assert!(
            spec_mount.is_some_and(|m| m["options"].as_array().is_some_and(|o| o.iter().any(|x| x == option))),
            "{name}: {spec}"
        );
        assert_eq!(spec["linux"]["rootfsPropagation"], option, "{name}");

        // Made after the container started: only propagation can bring it in.
        host_mounts.mount(Some(Path::new("tmpfs")), &sub, Some("tmpfs"), MsFlags::empty());
        std::fs::write(sub.join("marker"), format!("{name} seen\n")).unwrap();
        let st = t.wait_exited(&id).await;
        let out = stdout_lines(&st.log_path);
        assert_eq!((st.exit_code, out.as_slice()), (0, &[format!("{name} seen")][..]), "{st:?}");
    }

    // A source whose mount cannot propagate is refused, naming the path and what to do.
    let refused = [
        (&private, cri::MountPropagation::PropagationBidirectional, "which is not shared:"),
        (&slave, cri::MountPropagation::PropagationBidirectional, "which is not shared:"),
        (&private, cri::MountPropagation::PropagationHostToContainer, "which is not shared or slave:"),
    ];
    for (i, (source, propagation, why)) in refused.into_iter().enumerate() {
        let mut c = sh(&format!("refused-{i}"), &img, "true");
        c.mounts = vec![mount(source, propagation)];
        let err = t.try_create(&pod, c).await.expect_err("a propagating mount of a source that cannot propagate");
        let msg = err.message();
        assert_eq!(err.code(), Code::FailedPrecondition, "{msg}");
        assert!(msg.contains(&*source.to_string_lossy()) && msg.contains(why), "{propagation:?}: {msg}");
        assert!(msg.contains("mount --make-rshared"), "{msg}");
    }

    drop(host_mounts);
    t.finish().await;
}

/// The other way: a mount a (privileged) container makes under a Bidirectional mount shows on
/// the host, and outlives the container there (the host unmounts it, as a node's storage plugin
/// would); one made under a HostToContainer mount stays in the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_propagation_to_the_host() {
    use nix::mount::MsFlags;
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    // Mounting needs CAP_SYS_ADMIN, and the kubelet allows Bidirectional only to privileged
    // containers.
    let mut cfg = t.pod_cfg("propagation-back");
    cfg.linux_mut().security_context.get_or_insert_with(Default::default).privileged = true;
    let pod = t.run_pod(cfg).await;
    let host_mounts = HostMounts::new(t.td.base().join("propagation-back"));
    let shared = host_mounts.dir_with("shared", MsFlags::MS_SHARED);
    let cases = [
        ("bidirectional", cri::MountPropagation::PropagationBidirectional, true),
        ("host-to-container", cri::MountPropagation::PropagationHostToContainer, false),
    ];
    for (name, propagation, propagates) in cases {
        let sub = shared.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let script = format!(
            "mount -t tmpfs -o size=1m crius-{name} /shared/{name} && echo {name} > /shared/{name}/marker && \
             grep -c crius-{name} /proc/self/mounts; sleep 1000"
        );
        let mut c = sh(name, &img, &script);
        security(&mut c).privileged = true;
        c.mounts = vec![cri::Mount {
            container_path: "/shared".into(),
            host_path: shared.to_string_lossy().into_owned(),
            propagation: propagation as i32,
            ..Default::default()
        }];
        let id = t.run(&pod, c).await;
        // Mounted in the container (once: a Bidirectional mount does not come back to it twice).
        assert_eq!(t.wait_stdout(&id, 1).await, ["1"], "{name}");
        let on_host = host::mount_at(&sub);
        if propagates {
            let m = on_host.unwrap_or_else(|| panic!("{name}: the container's mount is not on the host"));
            assert_eq!((m.fstype.as_str(), m.source.as_str()), ("tmpfs", "crius-bidirectional"), "{m:?}");
            assert_eq!(std::fs::read_to_string(sub.join("marker")).unwrap(), "bidirectional\n");
        } else {
            assert!(on_host.is_none(), "{name}: the container's mount reached the host: {on_host:?}");
            assert!(!sub.join("marker").exists(), "{name}: the file went to the host directory");
        }
        t.stop(&id, 0).await.unwrap_or_else(|s| t.fail("StopContainer", &s));
        assert_eq!(host::mount_at(&sub).is_some(), propagates, "{name}: after the container stopped");
    }

    drop(host_mounts);
    let left = host::mounts_under(&t.td.base().join("propagation-back"));
    assert!(left.is_empty(), "mounts left: {left:?}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_and_private_pid_namespaces() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("pids")).await;

    let sleeper = t.run(&pod, cmd("sleeper", &img, &["sleep", "4321"])).await;
    t.wait_state(&sleeper, ContainerState::ContainerRunning, EXIT_WAIT).await;
    let (st, out) = t.run_to_exit(&pod, cmd("shared", &img, &["ps", "-o", "pid,args"])).await;
    assert_eq!(st.exit_code, 0, "{out:?}");
    assert!(out.iter().any(|l| l.ends_with("sleep 4321")), "a POD-pid container sees the other's process: {out:?}");
    let first = out.iter().find(|l| l.trim_start().starts_with("1 ")).cloned().unwrap_or_default();
    assert!(!first.contains("ps"), "PID 1 is the pod's init, not this container: {out:?}");

    let mut c = cmd("private", &img, &["ps", "-o", "pid,args"]);
    security(&mut c).namespace_options =
        Some(cri::NamespaceOption { pid: cri::NamespaceMode::Container as i32, ..Default::default() });
    let (st, out) = t.run_to_exit(&pod, c).await;
    assert_eq!(st.exit_code, 0, "{out:?}");
    assert!(!out.iter().any(|l| l.contains("sleep 4321")), "a CONTAINER-pid container sees only its own: {out:?}");
    assert!(out.iter().any(|l| l.trim_start().starts_with("1 ps")), "it is PID 1 of its own namespace: {out:?}");

    // A container whose init exits leaves nothing behind in the pod (as containerd's shim,
    // which kills what is left of a container without a PID namespace of its own).
    let (st, _) = t.run_to_exit(&pod, sh("leaves-a-child", &img, "sleep 1001 & exit 0")).await;
    assert_eq!(st.exit_code, 0);
    assert_gone_from_pod(&t, &sleeper, "sleep 1001").await;

    // And the sleeper is still running.
    assert_eq!(t.status(&sleeper).await.state, ContainerState::ContainerRunning as i32);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sync_output_exit_code_and_timeout() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("exec")).await;
    let id = t.run(&pod, cmd("target", &img, &["sleep", "1000"])).await;
    t.wait_state(&id, ContainerState::ContainerRunning, EXIT_WAIT).await;

    let r = t.exec(&id, &["echo", "hi"], 0).await.unwrap_or_else(|s| t.fail("ExecSync", &s));
    assert_eq!((r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code), (&b"hi\n"[..], &b""[..], 0));
    let r = t.exec(&id, &["sh", "-c", "echo oops >&2; exit 7"], 5).await.unwrap_or_else(|s| t.fail("ExecSync", &s));
    assert_eq!((r.stderr.as_slice(), r.exit_code), (&b"oops\n"[..], 7));
    // By a unique prefix of the id too.
    let r = t.exec(&id[..12], &["id", "-u"], 0).await.unwrap_or_else(|s| t.fail("ExecSync", &s));
    assert_eq!(r.stdout, b"0\n");

    // Timeout: the kubelet reads DeadlineExceeded as a timed-out probe (containerd answers that
    // too); the answer comes promptly and nothing is left behind in the container.
    let started = Instant::now();
    let err = t.exec(&id, &["sleep", "100"], 1).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(took < Duration::from_millis(2500), "ExecSync with timeout 1 answered after {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = t.exec(&id, &["ps", "-o", "pid,stat,args"], 5).await.unwrap_or_else(|s| t.fail("ExecSync ps", &s));
        let ps = String::from_utf8_lossy(&r.stdout).into_owned();
        let lingering: Vec<&str> =
            ps.lines().filter(|l| l.contains("sleep 100") && !l.contains("sleep 1000")).collect();
        if lingering.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the timed-out exec is still in the container (or a zombie): {ps}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An exec runs as the container's process does: its user, env and working directory.
    let mut c = cmd("as-app", &img, &["sleep", "1000"]);
    security(&mut c).run_as_user = Some(cri::Int64Value { value: 1000 });
    c.envs = vec![cri::KeyValue { key: "PROBE".into(), value: "from-config".into() }];
    c.working_dir = "/tmp".into();
    let app = t.run(&pod, c).await;
    let r =
        t.exec(&app, &["sh", "-c", "echo $(id -u) $PROBE $(pwd)"], 5).await.unwrap_or_else(|s| t.fail("ExecSync", &s));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "1000 from-config /tmp\n");

    // Errors: an unknown container, an empty command, a container that is not running.
    let err = t.exec(&"f".repeat(64), &["true"], 0).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = t.exec(&id, &[], 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    t.stop(&id, 0).await.unwrap();
    let err = t.exec(&id, &["true"], 0).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_containers_filters() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let p1 = t.run_pod(t.pod_cfg("list-one")).await;
    let p2 = t.run_pod(t.pod_cfg("list-two")).await;
    let labelled = |name: &str, argv: &[&str], labels: &[(&str, &str)]| {
        let mut c = cmd(name, &img, argv);
        c.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        c
    };
    let running = t.run(&p1, labelled("running", &["sleep", "1000"], &[("app", "a"), ("tier", "x")])).await;
    let exited = t.run(&p1, labelled("exited", &["true"], &[("app", "b")])).await;
    let created = t.create(&p2, labelled("created", &["true"], &[("app", "a")])).await;
    t.wait_exited(&exited).await;
    t.wait_state(&running, ContainerState::ContainerRunning, EXIT_WAIT).await;

    let all = t.list(None).await;
    assert_eq!(ids(&all), set(&[&running, &exited, &created]));
    let c = all.iter().find(|c| c.id == running).unwrap();
    assert_eq!(c.pod_sandbox_id, p1.id);
    assert_eq!(c.metadata.as_ref().unwrap().name, "running");
    assert_eq!(c.labels.get("tier").map(String::as_str), Some("x"));
    assert_eq!(c.image_ref, REG.image_id("busybox"));

    let tr = &t;
    let by = |f: cri::ContainerFilter| async move { ids(&tr.list(Some(f)).await) };
    let state = |s: ContainerState| Some(cri::ContainerStateValue { state: s as i32 });
    let labels = |l: &[(&str, &str)]| l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
    assert_eq!(
        by(cri::ContainerFilter { id: running[..10].to_string(), ..Default::default() }).await,
        set(&[&running])
    );
    assert_eq!(by(cri::ContainerFilter { id: running.clone(), ..Default::default() }).await, set(&[&running]));
    assert!(by(cri::ContainerFilter { id: "f".repeat(64), ..Default::default() }).await.is_empty());
    assert_eq!(
        by(cri::ContainerFilter { state: state(ContainerState::ContainerRunning), ..Default::default() }).await,
        set(&[&running])
    );
    assert_eq!(
        by(cri::ContainerFilter { state: state(ContainerState::ContainerExited), ..Default::default() }).await,
        set(&[&exited])
    );
    assert_eq!(
        by(cri::ContainerFilter { state: state(ContainerState::ContainerCreated), ..Default::default() }).await,
        set(&[&created])
    );
    assert!(
        by(cri::ContainerFilter { state: state(ContainerState::ContainerUnknown), ..Default::default() })
            .await
            .is_empty()
    );
    assert_eq!(
        by(cri::ContainerFilter { pod_sandbox_id: p1.id.clone(), ..Default::default() }).await,
        set(&[&running, &exited])
    );
    assert_eq!(
        by(cri::ContainerFilter { pod_sandbox_id: p2.id[..12].to_string(), ..Default::default() }).await,
        set(&[&created])
    );
    assert_eq!(
        by(cri::ContainerFilter { label_selector: labels(&[("app", "a")]), ..Default::default() }).await,
        set(&[&running, &created])
    );
    assert_eq!(
        by(cri::ContainerFilter { label_selector: labels(&[("app", "a"), ("tier", "x")]), ..Default::default() }).await,
        set(&[&running])
    );
    assert_eq!(
        by(cri::ContainerFilter {
            pod_sandbox_id: p2.id.clone(),
            label_selector: labels(&[("app", "a")]),
            ..Default::default()
        })
        .await,
        set(&[&created])
    );
    assert!(
        by(cri::ContainerFilter { label_selector: labels(&[("app", "c")]), ..Default::default() }).await.is_empty()
    );

    t.finish().await;
}

/// The container's memory cgroup, from /proc/PID/cgroup, and the file of its limit: the v2
/// unified tree's memory.max on a cgroup v2 host, else the v1 memory hierarchy's
/// memory.limit_in_bytes.
fn memory_cgroup_of(pid: i32) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = host::cgroup_v2_unified();
    let line = text
        .lines()
        .find(|l| match v2 {
            true => l.starts_with("0::"),
            false => l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "memory")),
        })
        .unwrap_or_else(|| panic!("no memory cgroup in /proc/{pid}/cgroup: {text}"));
    let rel = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
    match v2 {
        true => (Path::new("/sys/fs/cgroup").join(rel), PathBuf::from("memory.max")),
        false => (Path::new("/sys/fs/cgroup/memory").join(rel), PathBuf::from("memory.limit_in_bytes")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_container_resources_memory() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("resources")).await;
    const MIB: i64 = 1 << 20;
    let mut c = cmd("limited", &img, &["sleep", "1000"]);
    c.linux.as_mut().unwrap().resources =
        Some(cri::LinuxContainerResources { memory_limit_in_bytes: 64 * MIB, ..Default::default() });
    let id = t.run(&pod, c).await;
    let pid = t.pid(&id).await;
    let (cgroup, limit_file) = memory_cgroup_of(pid);
    assert!(cgroup.ends_with(&id), "the container's cgroup is named for it: {}", cgroup.display());
    let parent = pod.config.linux.as_ref().unwrap().cgroup_parent.clone();
    assert!(cgroup.starts_with(host::cgroup_dir(&parent)), "{}", cgroup.display());
    let read = |file: &Path| std::fs::read_to_string(cgroup.join(file)).unwrap().trim().parse::<i64>().unwrap();
    let limit = || read(&limit_file);
    // Where v1 accounts swap, memory+swap follows the memory limit (no swap), at create and update.
    let memsw_file = Path::new("memory.memsw.limit_in_bytes");
    let memsw = || cgroup.join(memsw_file).exists().then(|| read(memsw_file));
    assert_eq!(limit(), 64 * MIB);
    assert!(memsw().is_none_or(|v| v == 64 * MIB), "memsw {:?}", memsw());
    let reported = |st: &cri::ContainerStatus| {
        st.resources.as_ref().and_then(|r| r.linux.as_ref()).map(|l| l.memory_limit_in_bytes)
    };
    assert_eq!(reported(&t.status(&id).await), Some(64 * MIB));

    let update = |linux: cri::LinuxContainerResources| cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(linux),
        windows: None,
        annotations: HashMap::new(),
    };
    let req = update(cri::LinuxContainerResources { memory_limit_in_bytes: 128 * MIB, ..Default::default() });
    t.rt().update_container_resources(req).await.unwrap_or_else(|s| t.fail("UpdateContainerResources", &s));
    assert_eq!(limit(), 128 * MIB, "the new limit is in the cgroup");
    assert!(memsw().is_none_or(|v| v == 128 * MIB), "memsw {:?}", memsw());
    assert_eq!(reported(&t.status(&id).await), Some(128 * MIB), "ContainerStatus reports the new limit");

    // Refused as CreateContainer would refuse it, before anything is applied.
    let bad = [
        cri::LinuxContainerResources { memory_limit_in_bytes: 256 * MIB, cpu_shares: -2, ..Default::default() },
        cri::LinuxContainerResources {
            memory_limit_in_bytes: 256 * MIB,
            memory_swap_limit_in_bytes: MIB,
            ..Default::default()
        },
    ];
    for linux in bad {
        let err = t.rt().update_container_resources(update(linux.clone())).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{linux:?}: {err:?}");
        assert!(err.message().contains("resources."), "the message names the field: {}", err.message());
        assert_eq!(limit(), 128 * MIB, "a refused update changes nothing");
        assert_eq!(reported(&t.status(&id).await), Some(128 * MIB), "a refused update is not recorded");
    }

    // Kept across a restart of the daemon.
    let mut t = t;
    t.td.restart().await.unwrap();
    assert_eq!(reported(&t.status(&id).await), Some(128 * MIB));

    // An exited container cannot be updated.
    t.stop(&id, 0).await.unwrap();
    let req = cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources { memory_limit_in_bytes: 32 * MIB, ..Default::default() }),
        ..Default::default()
    };
    let err = t.rt().update_container_resources(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_container_log_loses_no_line() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("rotate")).await;
    let id = t.run(&pod, sh("counter", &img, "i=0; while :; do echo $i; i=$((i+1)); busybox usleep 3000; done")).await;
    let log = PathBuf::from(t.status(&id).await.log_path);
    let rotated = log.with_extension("log.1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    std::fs::rename(&log, &rotated).unwrap();
    // Lines keep going to the renamed file until the reopen.
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.rt()
        .reopen_container_log(cri::ReopenContainerLogRequest { container_id: id.clone() })
        .await
        .unwrap_or_else(|s| t.fail("ReopenContainerLog", &s));
    assert!(log.exists(), "the log is reopened at its path");
    tokio::time::sleep(Duration::from_millis(700)).await;
    t.stop(&id, 0).await.unwrap();

    let old = read_log(&rotated.to_string_lossy());
    let new = read_log(&log.to_string_lossy());
    assert!(old.len() > 10 && new.len() > 10, "both files have lines: {} and {}", old.len(), new.len());
    let numbers: Vec<u64> = old
        .iter()
        .chain(&new)
        .map(|l| {
            assert!(l.stream == "stdout" && !l.partial, "{l:?}");
            l.content.parse().unwrap_or_else(|_| panic!("not a number: {l:?}"))
        })
        .collect();
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "every line once, in order, across the old and new files");

    // A container that is not running has no log to reopen.
    let err =
        t.rt().reopen_container_log(cri::ReopenContainerLogRequest { container_id: id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    t.finish().await;
}

/// Lines the burst container writes: line `i` of [`burst_line`] for i in 1..=BURST_LINES.
const BURST_LINES: u64 = 300_000;
/// What the burst's lines are filled with, cycled (a piece lost or doubled shows).
const BURST_FILLER: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
/// Split size of the monitor's CRI log lines.
const SPLIT: usize = crius_monitor::crilog::MAX_LINE;

/// The content of line `i` and whether it goes to stderr: `<i>:` then filler, 0 to 60 bytes of
/// it, and every 1000th line longer than the split size (or exactly it, or one more).
fn burst_line(i: u64) -> (bool, String) {
    let prefix = format!("{i}:");
    let len = if i.is_multiple_of(1000) {
        [SPLIT, SPLIT + 1, 2 * SPLIT + 5, 3 * SPLIT][(i / 1000 % 4) as usize] - prefix.len()
    } else {
        (i * 7 % 61) as usize
    };
    (i % 10 == 3, prefix + &BURST_FILLER.chars().cycle().take(len).collect::<String>())
}

/// The same lines, written by busybox awk as fast as it can (its output fully buffered, so
/// lines reach the monitor cut anywhere).
fn burst_program() -> String {
    format!(
        "BEGIN {{ M = {SPLIT}; f = \"{BURST_FILLER}\"; while (length(f) < 3 * M) f = f f; \
         for (i = 1; i <= {BURST_LINES}; i++) {{ p = i \":\"; \
           if (i % 1000 == 0) {{ k = int(i / 1000) % 4; \
             L = (k == 0 ? M : (k == 1 ? M + 1 : (k == 2 ? 2 * M + 5 : 3 * M))) - length(p) }} \
           else L = (i * 7) % 61; \
           s = p substr(f, 1, L); \
           if (i % 10 == 3) print s > \"/dev/stderr\"; else print s }} }}"
    )
}

/// The lines of each stream, P pieces joined to the F that ends them, after checking that a P
/// piece is never longer than the split size; and how many P pieces there were.
fn reassemble(lines: &[LogLine]) -> (HashMap<String, Vec<String>>, usize) {
    let mut whole: HashMap<String, Vec<String>> = HashMap::new();
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut pieces = 0;
    for l in lines {
        assert!(l.content.len() <= SPLIT, "a log line longer than the split size: {} bytes", l.content.len());
        let open = pending.entry(l.stream.clone()).or_default();
        open.push_str(&l.content);
        if l.partial {
            pieces += 1;
        } else {
            whole.entry(l.stream.clone()).or_default().push(std::mem::take(open));
        }
    }
    for (stream, left) in pending {
        assert!(left.is_empty(), "{stream} ends with P pieces and no F: {} bytes", left.len());
    }
    (whole, pieces)
}

/// kubelet's rotation (rename the log, then ReopenContainerLog), over and over, while a
/// container writes a few hundred thousand lines to stdout and stderr as fast as it can, some
/// longer than the split size: every line is in exactly one file, once, in order, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_container_log_under_a_burst_loses_no_line() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("burst")).await;
    let program = burst_program();
    let started = Instant::now();
    let id = t.run(&pod, cmd("burst", &img, &["/bin/busybox", "awk", &program])).await;
    let log = PathBuf::from(t.status(&id).await.log_path);
    let mut rotated = Vec::new();
    let deadline = Instant::now() + EXIT_WAIT;
    let exited = loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let st = t.status(&id).await;
        if st.state == ContainerState::ContainerExited as i32 {
            break st;
        }
        assert!(Instant::now() < deadline, "the burst did not end within {EXIT_WAIT:?}: {st:?}");
        let to = log.with_extension(format!("log.{:04}", rotated.len()));
        std::fs::rename(&log, &to).unwrap_or_else(|e| panic!("renaming {} to {}: {e}", log.display(), to.display()));
        rotated.push(to);
        let req = cri::ReopenContainerLogRequest { container_id: id.clone() };
        match t.rt().reopen_container_log(req).await {
            Ok(_) => {}
            // It exited between the status and the reopen: its last lines are in the renamed file.
            Err(s) if s.code() == Code::FailedPrecondition => {}
            Err(s) => t.fail("ReopenContainerLog", &s),
        }
    };
    let took = started.elapsed();
    assert_eq!(exited.exit_code, 0, "{exited:?}");

    // The rotated files in order, then the current one (none if the last reopen came too late).
    let mut files = rotated.clone();
    if log.exists() {
        files.push(log.clone());
    }
    let mut lines = Vec::new();
    let mut with_lines = 0;
    for f in &files {
        let part = read_log(&f.to_string_lossy());
        with_lines += usize::from(!part.is_empty());
        lines.extend(part);
    }
    let (whole, pieces) = reassemble(&lines);
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let mut expected_pieces = 0;
    for i in 1..=BURST_LINES {
        let (stderr, line) = burst_line(i);
        expected_pieces += line.len().div_ceil(SPLIT).max(1) - 1;
        expected.entry(if stderr { "stderr" } else { "stdout" }.to_string()).or_default().push(line);
    }
    for stream in ["stdout", "stderr"] {
        let (got, want) = (&whole[stream], &expected[stream]);
        if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
            let cut = |s: &str| s.chars().take(40).collect::<String>();
            panic!(
                "{stream}: line {i} of {} is {:?}.. ({} bytes), expected {:?}.. ({} bytes)",
                want.len(),
                cut(&got[i]),
                got[i].len(),
                cut(&want[i]),
                want[i].len()
            );
        }
        assert_eq!(got.len(), want.len(), "{stream}: as many lines as written");
    }
    assert_eq!(pieces, expected_pieces, "P pieces: one per split of a long line");
    eprintln!(
        "{BURST_LINES} lines ({} log lines, {pieces} of them P) in {} files ({with_lines} with lines), \
         {} rotations, in {took:?}",
        lines.len(),
        files.len(),
        rotated.len()
    );
    assert!(with_lines >= 5, "rotations while the container wrote: only {with_lines} files have lines");
    t.finish().await;
}

/// The next event of the stream for one of `ids` (others are skipped), within `timeout`.
async fn next_event(
    stream: &mut crius_testkit::tonic::Streaming<cri::ContainerEventResponse>,
    ids: &[&String],
    timeout: Duration,
) -> cri::ContainerEventResponse {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("an event in time")
            .expect("the event stream works")
            .expect("the event stream is open");
        if ids.contains(&&ev.container_id) {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_events_in_order() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("events")).await;
    let mut stream = t.rt().get_container_events(cri::GetEventsRequest {}).await.unwrap().into_inner();
    use cri::ContainerEventType as E;

    // A long-running container, stopped and removed.
    let id = t.run(&pod, cmd("long", &img, &["sleep", "1000"])).await;
    t.stop(&id, 0).await.unwrap();
    t.remove(&id).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let ev = next_event(&mut stream, &[&id], Duration::from_secs(10)).await;
        got.push(E::try_from(ev.container_event_type).unwrap());
        if got.len() == 1 {
            assert_eq!(ev.pod_sandbox_status.as_ref().map(|p| p.id.clone()), Some(pod.id.clone()), "{ev:?}");
            assert!(ev.created_at > 0);
        }
    }
    assert_eq!(
        got,
        [E::ContainerCreatedEvent, E::ContainerStartedEvent, E::ContainerStoppedEvent, E::ContainerDeletedEvent]
    );

    // One that exits at once: STOPPED still comes after STARTED.
    for i in 0..5 {
        let id = t.run(&pod, cmd(&format!("quick-{i}"), &img, &["true"])).await;
        t.wait_exited(&id).await;
        t.remove(&id).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(
                E::try_from(next_event(&mut stream, &[&id], Duration::from_secs(10)).await.container_event_type)
                    .unwrap(),
            );
        }
        assert_eq!(
            got,
            [E::ContainerCreatedEvent, E::ContainerStartedEvent, E::ContainerStoppedEvent, E::ContainerDeletedEvent],
            "round {i}"
        );
    }
    // Closed before the daemon is stopped: a SIGTERM does not end an open event stream (the
    // daemon would wait for it; see the report), so the harness would wait 10 s and kill it.
    drop(stream);
    t.finish().await;
}

/// The next event of `id`, checked to be a pod sandbox event of `kind` whose attached status is
/// the pod's, in `state`.
async fn next_pod_event(
    stream: &mut crius_testkit::tonic::Streaming<cri::ContainerEventResponse>,
    id: &String,
    kind: cri::ContainerEventType,
    state: cri::PodSandboxState,
) -> cri::ContainerEventResponse {
    let ev = next_event(stream, &[id], Duration::from_secs(10)).await;
    assert_eq!(cri::ContainerEventType::try_from(ev.container_event_type), Ok(kind), "{ev:?}");
    let pod = ev.pod_sandbox_status.as_ref().unwrap_or_else(|| panic!("no pod_sandbox_status: {ev:?}"));
    assert_eq!((&pod.id, pod.state), (id, state as i32), "{ev:?}");
    assert!(ev.created_at > 0 && pod.created_at > 0, "{ev:?}");
    ev
}

/// Pod sandboxes send their own events (container_id = the sandbox id, as containerd): CREATED
/// and STARTED when ready, STOPPED once whether stopped or found dead, DELETED when removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_sandbox_events() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let mut stream = t.rt().get_container_events(cri::GetEventsRequest {}).await.unwrap().into_inner();
    use cri::ContainerEventType as E;
    use cri::PodSandboxState::{SandboxNotready as NotReady, SandboxReady as Ready};

    let pod = t.run_pod(t.pod_cfg("pod-events")).await;
    let ev = next_pod_event(&mut stream, &pod.id, E::ContainerCreatedEvent, Ready).await;
    let name = ev.pod_sandbox_status.and_then(|p| p.metadata).map(|m| m.name);
    assert_eq!(name.as_deref(), Some("pod-events"));
    next_pod_event(&mut stream, &pod.id, E::ContainerStartedEvent, Ready).await;

    // Stopped twice: one STOPPED, with the pod's containers' statuses.
    let ctr = t.run(&pod, cmd("long", &img, &["sleep", "1000"])).await;
    t.td.stop_pod(&pod.id).await.unwrap_or_else(|s| t.fail("StopPodSandbox", &s));
    t.td.stop_pod(&pod.id).await.unwrap_or_else(|s| t.fail("StopPodSandbox again", &s));
    let ev = next_pod_event(&mut stream, &pod.id, E::ContainerStoppedEvent, NotReady).await;
    let statuses: Vec<_> = ev.containers_statuses.iter().map(|c| (c.id.clone(), c.state)).collect();
    assert_eq!(statuses, [(ctr, ContainerState::ContainerExited as i32)], "{ev:?}");
    t.td.remove_pod(&pod.id).await.unwrap_or_else(|s| t.fail("RemovePodSandbox", &s));
    let ev = next_pod_event(&mut stream, &pod.id, E::ContainerDeletedEvent, NotReady).await;
    assert!(ev.containers_statuses.is_empty(), "its containers went first: {ev:?}");

    // A pod whose monitor (and with it its init) dies is STOPPED then, not again at Stop.
    let dies = t.run_pod(t.pod_cfg("pod-dies")).await;
    next_pod_event(&mut stream, &dies.id, E::ContainerCreatedEvent, Ready).await;
    next_pod_event(&mut stream, &dies.id, E::ContainerStartedEvent, Ready).await;
    let monitor = t.td.pod_info(&dies.id).await.unwrap().monitor();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    next_pod_event(&mut stream, &dies.id, E::ContainerStoppedEvent, NotReady).await;
    t.td.stop_pod(&dies.id).await.unwrap_or_else(|s| t.fail("StopPodSandbox of a dead pod", &s));
    t.td.remove_pod(&dies.id).await.unwrap_or_else(|s| t.fail("RemovePodSandbox of a dead pod", &s));
    next_pod_event(&mut stream, &dies.id, E::ContainerDeletedEvent, NotReady).await;

    // Removing an unknown pod sends nothing: the next event is a new pod's.
    t.td.remove_pod(&dies.id).await.unwrap_or_else(|s| t.fail("RemovePodSandbox of a removed pod", &s));
    let last = t.run_pod(t.pod_cfg("pod-last")).await;
    let ev = next_event(&mut stream, &[&pod.id, &dies.id, &last.id], Duration::from_secs(10)).await;
    assert_eq!(ev.container_id, last.id, "{ev:?}");
    // Closed before the daemon stops (see container_events_in_order).
    drop(stream);
    t.finish().await;
}

/// The kubelet keeps a GetContainerEvents stream open for as long as it runs (evented PLEG).
/// A SIGTERM must still stop the daemon promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_open_event_stream_stops_the_daemon() {
    needs_root!();
    let mut t = T::start().await;
    let stream = t.rt().get_container_events(cri::GetEventsRequest {}).await.unwrap().into_inner();
    let started = Instant::now();
    let stopped = t.td.stop().await;
    let took = started.elapsed();
    drop(stream);
    assert!(stopped.is_ok() && took < Duration::from_secs(5), "SIGTERM took {took:?}: {stopped:?}");
    t.td.restart().await.unwrap();
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_kill9_and_restart_keeps_containers() {
    needs_root!();
    let mut t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("restart")).await;
    let long = t.run(&pod, cmd("long", &img, &["sleep", "1000"])).await;
    let during = t.run(&pod, sh("exits-while-down", &img, "sleep 2; exit 7")).await;
    let after = t.run(&pod, sh("exits-after", &img, "sleep 7; echo done; exit 5")).await;
    let long_pid = t.pid(&long).await;

    t.td.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    t.td.restart().await.unwrap_or_else(|e| panic!("the daemon did not come back: {e}"));

    let st = t.status(&long).await;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
    assert_eq!(t.pid(&long).await, long_pid);
    let st = t.status(&during).await;
    assert_eq!(
        (st.state, st.exit_code, st.reason.as_str()),
        (ContainerState::ContainerExited as i32, 7, "Error"),
        "{st:?}"
    );
    assert!(st.finished_at > st.started_at);
    // One that exits after the restart is seen too, with its output.
    let st = t.wait_exited(&after).await;
    assert_eq!(st.exit_code, 5, "{st:?}");
    assert_eq!(stdout_lines(&st.log_path), ["done"]);
    // The restarted daemon stops and execs as before.
    let r = t.exec(&long, &["echo", "still here"], 5).await.unwrap_or_else(|s| t.fail("ExecSync after restart", &s));
    assert_eq!(r.stdout, b"still here\n");
    t.stop(&long, 0).await.unwrap_or_else(|s| t.fail("StopContainer after restart", &s));
    assert_eq!(t.status(&long).await.exit_code, 137);
    t.finish().await;
}

/// kill -9 of the daemon at points through CreateContainer: the restarted daemon lists either
/// a whole container or none, and once the pod is removed nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_kill9_during_create_leaks_nothing() {
    needs_root!();
    let mut t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("create-crash")).await;
    // A create takes about 100 ms here (debug build): kill before, during and after it.
    for (i, delay_ms) in [0u64, 15, 30, 45, 60, 80, 100, 140].into_iter().enumerate() {
        let mut rt = t.rt();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(cmd(&format!("c{i}"), &img, &["sleep", "1000"])),
            sandbox_config: Some(pod.config.clone()),
        };
        let creating = tokio::spawn(async move { rt.create_container(req).await });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        t.td.kill9();
        let _ = creating.await;
        t.td.restart().await.unwrap_or_else(|e| panic!("the daemon did not come back: {e}"));
        for c in t.list(None).await {
            let st = t.status(&c.id).await;
            assert!(
                st.state == ContainerState::ContainerCreated as i32 && t.info(&c.id).await["pid"].as_i64().is_some(),
                "a container that survived the crash is whole: {st:?}"
            );
            t.start_ctr(&c.id).await;
            t.stop(&c.id, 0).await.unwrap_or_else(|s| t.fail("StopContainer", &s));
            t.remove(&c.id).await.unwrap_or_else(|s| t.fail("RemoveContainer", &s));
        }
    }
    // Records of exits of half-made containers must not pile up either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_cleans_everything() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("remove")).await;
    let id = t.run(&pod, cmd("running", &img, &["sleep", "1000"])).await;
    let info = t.info(&id).await;
    let pid = t.pid(&id).await;
    let bundle = PathBuf::from(info["bundle"].as_str().expect("the bundle in verbose info"));
    let rootfs = bundle.join("rootfs");
    assert!(host::mount_at(&rootfs).is_some_and(|m| m.fstype == "overlay"), "the rootfs is an overlay mount");
    let layer = t.td.root().join("containers").join(&id);
    assert!(layer.join("upper").is_dir(), "the writable layer is at {}", layer.display());
    let runc_state = t.td.state().join("runc").join(&id);
    assert!(runc_state.exists(), "runc's state is at {}", runc_state.display());

    // Removing a running container kills it.
    t.remove(&id).await.unwrap_or_else(|s| t.fail("RemoveContainer", &s));
    assert!(host::wait_process_gone(pid, None, Duration::from_secs(5)), "the container's process is gone");
    assert_eq!(t.try_status(&id).await.unwrap_err().code(), Code::NotFound);
    assert!(host::mount_at(&rootfs).is_none(), "the overlay is unmounted");
    assert!(!bundle.exists(), "the bundle is gone");
    assert!(!layer.exists(), "the writable layer is gone: {:?}", std::fs::read_dir(&layer).map(|d| d.count()));
    assert!(!runc_state.exists(), "runc's state is gone");
    // Again: fine (RemoveContainer is idempotent).
    t.remove(&id).await.unwrap_or_else(|s| t.fail("RemoveContainer again", &s));
    // The name is free again; while it is taken, a second create with it is refused.
    let again = t.run(&pod, cmd("running", &img, &["sleep", "1000"])).await;
    let err = t.try_create(&pod, cmd("running", &img, &["sleep", "1000"])).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&again), "the error names the holder: {}", err.message());
    let exited = t.run(&pod, cmd("exited", &img, &["true"])).await;
    t.wait_exited(&exited).await;
    let again_bundle = PathBuf::from(t.info(&again).await["bundle"].as_str().unwrap());

    // StopPodSandbox stops its containers (SIGKILL); no container can be made in a stopped pod.
    t.td.stop_pod(&pod.id).await.unwrap_or_else(|s| t.fail("StopPodSandbox", &s));
    let st = t.status(&again).await;
    assert_eq!((st.state, st.exit_code), (ContainerState::ContainerExited as i32, 137), "{st:?}");
    assert_eq!(t.status(&exited).await.exit_code, 0, "an exited container keeps its status");
    let err = t.try_create(&pod, cmd("late", &img, &["true"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // RemovePodSandbox removes its containers.
    t.td.remove_pod(&pod.id).await.unwrap_or_else(|s| t.fail("RemovePodSandbox", &s));
    assert!(t.list(None).await.is_empty());
    for id in [&again, &exited] {
        assert_eq!(t.try_status(id).await.unwrap_err().code(), Code::NotFound);
    }
    assert!(!again_bundle.exists());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_monitor_means_exited_containers() {
    needs_root!();
    let mut t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("monitor-dies")).await;
    let shared = t.run(&pod, cmd("shared-pid", &img, &["sleep", "1000"])).await;
    let mut c = cmd("own-pid", &img, &["sleep", "1000"]);
    security(&mut c).namespace_options =
        Some(cri::NamespaceOption { pid: cri::NamespaceMode::Container as i32, ..Default::default() });
    let own = t.run(&pod, c).await;
    let pids = [t.pid(&shared).await, t.pid(&own).await];
    let monitor = t.td.pod_info(&pod.id).await.unwrap().monitor();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    for id in [&shared, &own] {
        let st = t.wait_state(id, ContainerState::ContainerExited, Duration::from_secs(10)).await;
        eprintln!("{id} reported exited {:?} after its monitor was killed", killed.elapsed());
        assert!(st.message.contains("monitor"), "the message says the monitor died: {st:?}");
        assert_ne!(st.exit_code, 0, "{st:?}");
    }
    for pid in pids {
        assert!(host::wait_process_gone(pid, None, Duration::from_secs(5)), "container process {pid} is gone");
    }
    // Still exited after a restart of the daemon: never Running again.
    t.td.restart().await.unwrap();
    for id in [&shared, &own] {
        let st = t.status(id).await;
        assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_killed_while_the_daemon_is_down() {
    needs_root!();
    let mut t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("monitor-dies-alone")).await;
    let shared = t.run(&pod, cmd("shared-pid", &img, &["sleep", "1000"])).await;
    let mut c = cmd("own-pid", &img, &["sleep", "1000"]);
    security(&mut c).namespace_options =
        Some(cri::NamespaceOption { pid: cri::NamespaceMode::Container as i32, ..Default::default() });
    let own = t.run(&pod, c).await;
    let pids = [t.pid(&shared).await, t.pid(&own).await];
    let info = t.td.pod_info(&pod.id).await.unwrap();
    let (monitor, init) = (info.monitor(), info.init_pid());

    t.td.kill9();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    // The pod init dies with its monitor: both are gone before the daemon is back.
    assert!(host::wait_process_gone(monitor, None, Duration::from_secs(5)));
    assert!(host::wait_process_gone(init, None, Duration::from_secs(10)), "the pod init died with its monitor");
    t.td.restart().await.unwrap_or_else(|e| panic!("the daemon did not come back: {e}"));
    // Nobody can record these containers' exits any more: they are not reported running, and
    // none of their processes is left without a monitor.
    for id in [&shared, &own] {
        let st = t.wait_state(id, ContainerState::ContainerExited, Duration::from_secs(10)).await;
        assert!(st.message.contains("monitor"), "the message says the monitor died: {st:?}");
    }
    for pid in pids {
        assert!(host::wait_process_gone(pid, None, Duration::from_secs(5)), "container process {pid} is gone");
    }
    t.finish().await;
}

/// Whether `crun` can run a trivial container on this machine; the reason when it cannot.
fn crun_probe(dir: &Path) -> Result<(), String> {
    let crun = ["/usr/bin/crun", "/usr/sbin/crun", "/usr/local/bin/crun"].into_iter().find(|p| Path::new(p).exists());
    let Some(crun) = crun else { return Err("crun is not installed".into()) };
    let bundle = dir.join("crun-probe");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).map_err(|e| e.to_string())?;
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
    }
    let spec = std::process::Command::new(crun).arg("spec").current_dir(&bundle).output().map_err(|e| e.to_string())?;
    if !spec.status.success() {
        return Err(format!("crun spec: {}", String::from_utf8_lossy(&spec.stderr).trim()));
    }
    let config = bundle.join("config.json");
    let mut json: crius_testkit::serde_json::Value =
        crius_testkit::serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["process"]["args"] = crius_testkit::serde_json::json!(["/bin/busybox", "true"]);
    json["process"]["terminal"] = crius_testkit::serde_json::json!(false);
    std::fs::write(&config, json.to_string()).unwrap();
    let root = dir.join("crun-root");
    let id = format!("crius-probe-{}", std::process::id());
    let out = std::process::Command::new(crun)
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::process::Command::new(crun).arg("--root").arg(&root).args(["delete", "-f", &id]).output();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("crun run: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crun_handler() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let probe = crun_probe(t.td.base());
    // RunPodSandbox with the crun handler: the pod itself needs no OCI runtime.
    let cfg = t.pod_cfg("crun-pod");
    let req = cri::RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: "crun".into() };
    let crun_pod = match t.rt().run_pod_sandbox(req).await {
        Ok(r) => Pod { id: r.into_inner().pod_sandbox_id, config: cfg },
        Err(s) => t.fail("RunPodSandbox with handler crun", &s),
    };
    t.td.track_pod(&crun_pod.id);
    match probe {
        Ok(()) => {
            let (st, out) = t.run_to_exit(&crun_pod, sh("on-crun", &img, "echo via crun")).await;
            assert_eq!((st.exit_code, out), (0, vec!["via crun".to_string()]));
            let info = t.info(&st.id).await;
            assert_eq!(info["runtime"]["name"], "crun", "{info}");
        }
        Err(reason) => {
            // Not a silent pass: the daemon must refuse the container with crun's own message.
            let err = t.try_create(&crun_pod, sh("on-crun", &img, "echo via crun")).await.unwrap_err();
            // Written to the process's stderr itself, past libtest's capture of eprintln!, so
            // that it shows in every `cargo test` run (nextest shows it with --no-capture).
            let banner = format!(
                "\n==========\nCRUN UNAVAILABLE ON THIS HOST: {reason}\n\
                 (CreateContainer with handler crun: {:?}: {})\n==========\n",
                err.code(),
                err.message()
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
            assert!(err.message().contains("crun"), "the error names crun: {}", err.message());
            let runtime_words: Vec<&str> = reason.rsplit(": ").next().unwrap_or_default().split_whitespace().collect();
            let said = runtime_words.iter().take(3).copied().collect::<Vec<_>>().join(" ");
            assert!(
                err.message().contains(&said),
                "the error carries crun's own message ({said:?}): {}",
                err.message()
            );
            assert!(t.list(None).await.is_empty(), "the failed create left no container");
        }
    }
    t.finish().await;
}

/// `[runtimes.NAME.options]`: global flags reach every runtime call, no_pivot the create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_handler_options_reach_the_runtime() {
    needs_root!();
    // A runtimes table replaces the built-in one: runc stays the default.
    let builder = TestDaemon::builder()
        .config_line("[runtimes.runc]\nbinary = \"runc\"")
        .config_line(
            "[runtimes.runc-debug]\nbinary = \"runc\"\noptions = { no_pivot = true, global_args = [\"--debug\"] }",
        )
        .config_line("[runtimes.runc-bogus]\nbinary = \"runc\"\noptions = { global_args = [\"--no-such-flag\"] }");
    let t = T::with(builder).await;
    let img = t.pull("busybox").await;
    let pod_with = |name: &str, handler: &str| {
        let cfg = t.pod_cfg(name);
        let req = cri::RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: handler.into() };
        (cfg, req)
    };
    let (cfg, req) = pod_with("opts-ok", "runc-debug");
    let ok = match t.rt().run_pod_sandbox(req).await {
        Ok(r) => Pod { id: r.into_inner().pod_sandbox_id, config: cfg },
        Err(s) => t.fail("RunPodSandbox with handler runc-debug", &s),
    };
    t.td.track_pod(&ok.id);
    let (st, out) = t.run_to_exit(&ok, sh("opts", &img, "echo with options")).await;
    assert_eq!((st.exit_code, out), (0, vec!["with options".to_string()]));

    // A flag the runtime does not know fails the create with the runtime's own word on it.
    let (cfg, req) = pod_with("opts-bad", "runc-bogus");
    let bad = match t.rt().run_pod_sandbox(req).await {
        Ok(r) => Pod { id: r.into_inner().pod_sandbox_id, config: cfg },
        Err(s) => t.fail("RunPodSandbox with handler runc-bogus", &s),
    };
    t.td.track_pod(&bad.id);
    let err = t.try_create(&bad, sh("bogus", &img, "true")).await.expect_err("runc refuses the flag");
    assert!(err.message().contains("no-such-flag"), "{:?}: {}", err.code(), err.message());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_start_latency() {
    needs_root!();
    let t = T::start().await;
    let img = t.pull("busybox").await;
    let pod = t.run_pod(t.pod_cfg("latency")).await;
    let mut took = Vec::new();
    let mut last = String::new();
    for i in 0..20 {
        let started = Instant::now();
        last = t.run(&pod, cmd(&format!("c{i}"), &img, &["sleep", "1000"])).await;
        took.push(started.elapsed());
    }
    took.sort();
    let p50 = took[took.len() / 2];
    // Where the time goes: the last container's CreateContainer steps.
    let info = t.try_status(&last).await.expect("verbose status").info;
    let info: serde_json::Value = serde_json::from_str(info.get("info").expect("verbose info")).expect("JSON");
    let steps = info["timeline"].as_array().cloned().unwrap_or_default();
    assert!(!steps.is_empty(), "the container has a start timeline: {info}");
    let steps: Vec<String> = steps
        .iter()
        .map(|s| {
            format!("{} {:.1} ms", s["step"].as_str().unwrap_or("?"), s["duration_us"].as_f64().unwrap_or(0.0) / 1e3)
        })
        .collect();
    let line = format!(
        "create+start latency of a busybox container over {} ({} build): p50 {p50:?}, min {:?}, max {:?}; \
         the last one's CreateContainer steps: {}\n",
        took.len(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        took[0],
        took[took.len() - 1],
        steps.join(", ")
    );
    // Past libtest's capture, so that every run shows it.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    assert!(p50 < Duration::from_secs(5), "p50 {p50:?}");
    t.finish().await;
}
