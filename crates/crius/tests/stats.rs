//! Stats and metrics end to end (run as root): cpu, memory and writable-layer usage of real
//! containers, a pod's network counters after traffic between two test pods, the CRI metrics
//! and the Prometheus endpoint. Each test has its own daemon (so they run in parallel); the
//! registry and its busybox image are shared by the test binary. Every test removes its pods
//! and checks that nothing leaked.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crius_testkit::cri;
use crius_testkit::image_builder::catalog;
use crius_testkit::shared_registry::SharedRegistry;
use crius_testkit::tonic::Status;
use crius_testkit::{Ns, Nsenter, PodConfigExt, TestDaemon, pod_config, tokio};

const BIN: &str = env!("CARGO_BIN_EXE_crius");
const BUSYBOX: &str = "/bin/busybox";
const MIB: u64 = 1024 * 1024;

static REG: LazyLock<SharedRegistry> = LazyLock::new(|| {
    SharedRegistry::start(vec![("busybox", catalog::busybox())])
        .unwrap_or_else(|e| panic!("the shared registry did not start: {e}"))
});

macro_rules! needs_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// One test's daemon, with helpers that panic with the daemon's log on failure.
struct T {
    td: TestDaemon,
}

struct Pod {
    id: String,
    config: cri::PodSandboxConfig,
}

impl T {
    /// `metrics` are more keys of the `[metrics]` table ("" for none).
    async fn with(builder: crius_testkit::TestDaemonBuilder, metrics: &str) -> T {
        let _ = REG.host();
        // Writable layers measured every second, so a test need not wait long for a change.
        let builder = builder.config_line(format!("metrics = {{ layer_usage_interval_secs = 1{metrics} }}"));
        T { td: builder.start(BIN).await.unwrap_or_else(|e| panic!("the daemon did not start: {e}")) }
    }

    async fn start() -> T {
        Self::with(TestDaemon::builder(), "").await
    }

    fn rt(&self) -> crius_testkit::RuntimeServiceClient<crius_testkit::Channel> {
        self.td.runtime()
    }

    fn fail(&self, what: &str, s: &Status) -> ! {
        panic!("{what}: {:?}: {}\n{}\n{}", s.code(), s.message(), self.td.log_tail(60), self.td.monitor_logs(30))
    }

    async fn pull(&self) -> String {
        let image = REG.reference("busybox");
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
            auth: None,
            sandbox_config: None,
        };
        if let Err(s) = self.td.image().pull_image(req).await {
            self.fail("PullImage", &s);
        }
        image
    }

    /// A pod in a cgroup parent of its own (which the harness checks for leftovers).
    async fn pod(&self, name: &str) -> Pod {
        let config = pod_config(name).cgroup_parent(&self.td.cgroup_parent());
        match self.td.run_pod(config.clone()).await {
            Ok(id) => Pod { id, config },
            Err(s) => self.fail("RunPodSandbox", &s),
        }
    }

    async fn create(&self, pod: &Pod, name: &str, image: &str, script: &str) -> String {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.to_string(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: image.to_string(), ..Default::default() }),
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            labels: [("stats-test".to_string(), name.to_string())].into(),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        };
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        match self.rt().create_container(req).await {
            Ok(r) => r.into_inner().container_id,
            Err(s) => self.fail("CreateContainer", &s),
        }
    }

    async fn run(&self, pod: &Pod, name: &str, image: &str, script: &str) -> String {
        let id = self.create(pod, name, image, script).await;
        if let Err(s) = self.rt().start_container(cri::StartContainerRequest { container_id: id.clone() }).await {
            self.fail("StartContainer", &s);
        }
        id
    }

    async fn stats(&self, id: &str) -> cri::ContainerStats {
        match self.rt().container_stats(cri::ContainerStatsRequest { container_id: id.to_string() }).await {
            Ok(r) => r.into_inner().stats.expect("ContainerStats has stats"),
            Err(s) => self.fail("ContainerStats", &s),
        }
    }

    async fn pod_stats(&self, id: &str) -> cri::PodSandboxStats {
        match self.rt().pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: id.to_string() }).await {
            Ok(r) => r.into_inner().stats.expect("PodSandboxStats has stats"),
            Err(s) => self.fail("PodSandboxStats", &s),
        }
    }

    /// Polls `f` on the container's stats until it holds; the stats that passed.
    async fn wait_stats(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&cri::ContainerStats) -> bool,
    ) -> cri::ContainerStats {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats(id).await;
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}; last stats: {s:?}\n{}",
                self.td.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn finish(self) {
        if let Err(s) = self.td.remove_all_pods().await {
            self.fail("removing every pod", &s);
        }
        self.td.assert_no_leaks().await;
    }
}

fn v(x: &Option<cri::UInt64Value>) -> u64 {
    x.as_ref().map(|v| v.value).unwrap_or_default()
}

fn cpu_ns(s: &cri::ContainerStats) -> u64 {
    s.cpu.as_ref().map(|c| v(&c.usage_core_nano_seconds)).unwrap_or_default()
}

fn working_set(s: &cri::ContainerStats) -> u64 {
    s.memory.as_ref().map(|m| v(&m.working_set_bytes)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_burner_uses_about_one_core() {
    needs_root!();
    let t = T::start().await;
    let image = t.pull().await;
    let pod = t.pod("burn").await;
    let id = t.run(&pod, "burner", &image, "while :; do :; done").await;
    // A created, never started container reports what it has, not an error.
    let idle = t.create(&pod, "idle", &image, "sleep 3600").await;
    let s = t.stats(&idle).await;
    assert_eq!(s.attributes.as_ref().map(|a| a.id.as_str()), Some(idle.as_str()));

    let first = t.stats(&id).await;
    let attrs = first.attributes.clone().expect("attributes");
    assert_eq!(attrs.metadata.map(|m| m.name).as_deref(), Some("burner"));
    assert_eq!(attrs.labels.get("stats-test").map(String::as_str), Some("burner"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = t.stats(&id).await;
    assert!(cpu_ns(&second) > cpu_ns(&first), "cpu usage did not rise: {first:?} -> {second:?}");
    let cores = second.cpu.as_ref().map(|c| v(&c.usage_nano_cores)).unwrap_or_default() as f64 / 1e9;
    // One busy loop is one core at most; this 2-core machine runs other tests at once.
    assert!((0.2..=1.3).contains(&cores), "usage_nano_cores = {cores} cores, expected about one");
    let cpu = second.cpu.as_ref().expect("cpu");
    assert!(cpu.timestamp > first.cpu.as_ref().map(|c| c.timestamp).unwrap_or_default());

    // The list, filtered by pod and by label, finds the same container.
    let filter = cri::ContainerStatsFilter {
        pod_sandbox_id: pod.id.clone(),
        label_selector: [("stats-test".to_string(), "burner".to_string())].into(),
        ..Default::default()
    };
    let listed = match t.rt().list_container_stats(cri::ListContainerStatsRequest { filter: Some(filter) }).await {
        Ok(r) => r.into_inner().stats,
        Err(s) => t.fail("ListContainerStats", &s),
    };
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(cpu_ns(&listed[0]) >= cpu_ns(&second));

    // The pod's cgroup holds the burner: its cpu rises too, and it counts processes.
    let p1 = t.pod_stats(&pod.id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p2 = t.pod_stats(&pod.id).await;
    let linux = p2.linux.as_ref().expect("linux stats");
    let pod_cpu = |p: &cri::PodSandboxStats| {
        p.linux.as_ref().and_then(|l| l.cpu.as_ref()).map(|c| v(&c.usage_core_nano_seconds)).unwrap_or_default()
    };
    assert!(pod_cpu(&p2) > pod_cpu(&p1) && pod_cpu(&p2) >= cpu_ns(&second), "{p1:?}\n{p2:?}");
    assert!(linux.cpu.as_ref().is_some_and(|c| v(&c.usage_nano_cores) > 0), "{linux:?}");
    assert!(linux.process.as_ref().is_some_and(|p| v(&p.process_count) >= 2), "{linux:?}");
    assert_eq!(linux.containers.len(), 2);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_container_allocates_shows_in_its_working_set() {
    needs_root!();
    let t = T::start().await;
    let image = t.pull().await;
    let pod = t.pod("mem").await;
    // tmpfs pages are charged to the writer's cgroup and are not reclaimable cache: the working
    // set grows by what is written to the pod's /dev/shm.
    let id = t
        .run(&pod, "hog", &image, "sleep 2; /bin/busybox dd if=/dev/zero of=/dev/shm/fill bs=1M count=40; sleep 3600")
        .await;
    let before = t.stats(&id).await;
    let base = working_set(&before);
    assert!(base < 30 * MIB, "the working set is already {base} before the allocation");
    let after = t
        .wait_stats(&id, "the working set grows by 40 MiB", Duration::from_secs(30), |s| {
            working_set(s) >= base + 38 * MIB
        })
        .await;
    let m = after.memory.as_ref().expect("memory");
    assert!(v(&m.usage_bytes) >= v(&m.working_set_bytes));
    assert!(v(&m.page_faults) > 0, "{m:?}");
    // No memory limit was set: nothing is "available" below one.
    assert!(m.available_bytes.is_none(), "{m:?}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writable_layer_follows_a_file_written_in_the_container() {
    needs_root!();
    let t = T::start().await;
    let image = t.pull().await;
    let pod = t.pod("disk").await;
    let id =
        t.run(&pod, "writer", &image, "sleep 2; /bin/busybox dd if=/dev/zero of=/big bs=1M count=8; sleep 3600").await;
    // The first call asks for the layer to be measured; a List never walks it itself.
    let layer = |s: &cri::ContainerStats| s.writable_layer.as_ref().map(|w| (v(&w.used_bytes), v(&w.inodes_used)));
    let s = t
        .wait_stats(&id, "the writable layer holds the 8 MiB file", Duration::from_secs(30), |s| {
            layer(s).is_some_and(|(bytes, _)| bytes >= 8 * MIB)
        })
        .await;
    let fs = s.writable_layer.as_ref().expect("writable layer");
    assert!(fs.timestamp > 0 && fs.fs_id.as_ref().is_some_and(|f| f.mountpoint.ends_with("/containers")), "{fs:?}");
    let (_, inodes) = layer(&s).unwrap_or_default();
    assert!(inodes >= 2, "the layer's root and the file: {inodes}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_network_counters_move_with_traffic_between_two_pods() {
    needs_root!();
    let t = T::with(TestDaemon::builder().bridge_network(), "").await;
    let a = t.pod("net-a").await;
    let b = t.pod("net-b").await;
    let eth0 = |p: &cri::PodSandboxStats| {
        let net = p.linux.as_ref().and_then(|l| l.network.clone()).expect("network stats");
        assert!(net.timestamp > 0);
        let i = net.default_interface.expect("eth0");
        assert_eq!(i.name, "eth0");
        (v(&i.rx_bytes), v(&i.tx_bytes))
    };
    let (a_rx0, a_tx0) = eth0(&t.pod_stats(&a.id).await);
    let (b_rx0, _) = eth0(&t.pod_stats(&b.id).await);
    let b_ip = t.td.pod_status(&b.id).await.ok().and_then(|r| r.status).and_then(|s| s.network).map(|n| n.ip);
    let b_ip = b_ip.filter(|ip| !ip.is_empty()).expect("pod b has an IP");
    let a_netns = t.td.pod_info(&a.id).await.expect("pod info").namespaces.net.expect("a pinned netns");
    let ping =
        Nsenter::new().ns_path(Ns::Net, &a_netns).run([BUSYBOX, "ping", "-c", "5", "-s", "1000", "-W", "2", &b_ip]);
    assert!(ping.as_ref().map(|o| o.success()).unwrap_or(false), "pod a cannot ping pod b: {ping:?}");

    let (a_rx1, a_tx1) = eth0(&t.pod_stats(&a.id).await);
    assert!(a_tx1 >= a_tx0 + 5 * 1000, "pod a sent 5 KB: tx {a_tx0} -> {a_tx1}");
    assert!(a_rx1 >= a_rx0 + 5 * 1000, "pod a got 5 KB of replies: rx {a_rx0} -> {a_rx1}");
    // The list has both pods, each with its own counters.
    let listed = match t.rt().list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None }).await {
        Ok(r) => r.into_inner().stats,
        Err(s) => t.fail("ListPodSandboxStats", &s),
    };
    assert_eq!(listed.len(), 2);
    let b_now = listed.iter().find(|p| p.attributes.as_ref().is_some_and(|a| a.id == b.id)).expect("pod b listed");
    assert!(eth0(b_now).0 >= b_rx0 + 5 * 1000, "pod b received the pings");

    // The same counters as CRI metrics, under the descriptors' labels.
    let descriptors = t.rt().list_metric_descriptors(cri::ListMetricDescriptorsRequest {}).await;
    let descriptors = descriptors.unwrap_or_else(|s| t.fail("ListMetricDescriptors", &s)).into_inner().descriptors;
    let metrics = t.rt().list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}).await;
    let metrics = metrics.unwrap_or_else(|s| t.fail("ListPodSandboxMetrics", &s)).into_inner().pod_metrics;
    let keys = &descriptors
        .iter()
        .find(|d| d.name == "container_network_transmit_bytes_total")
        .expect("descriptor")
        .label_keys;
    let a_metrics = metrics.iter().find(|m| m.pod_sandbox_id == a.id).expect("pod a's metrics");
    let tx = a_metrics
        .metrics
        .iter()
        .find(|m| {
            let labels: BTreeMap<_, _> = keys.iter().zip(&m.label_values).collect();
            m.name == "container_network_transmit_bytes_total"
                && labels.get(&"interface".to_string()) == Some(&&"eth0".to_string())
        })
        .expect("eth0's transmit bytes");
    assert!(v(&tx.value) >= a_tx1, "{tx:?}");
    for m in &a_metrics.metrics {
        let d = descriptors.iter().find(|d| d.name == m.name).unwrap_or_else(|| panic!("no descriptor for {}", m.name));
        assert_eq!(d.label_keys.len(), m.label_values.len(), "{}", m.name);
    }
    t.finish().await;
}

/// A sample line of the exposition format: `name{label="value",...} value`.
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return None;
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' if key.is_empty() => break i,
                ',' if key.is_empty() => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => value.push(chars.next()?.1),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.trim().split(' ').next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name.to_string(), labels, value))
}

/// Every sample of an exposition, after checking each line is a comment or a sample.
fn parse_exposition(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or_default();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "bad comment line {line:?}");
            continue;
        }
        samples.push(parse_sample(line).unwrap_or_else(|| panic!("not a sample line: {line:?}")));
    }
    samples
}

fn value_of(samples: &[(String, BTreeMap<String, String>, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.2)
        .unwrap_or(0.0)
}

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("application/openmetrics-text"), "{out}");
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // hyper answers a `Connection: close` request with a plain body (no chunking) here.
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_endpoint_parses_and_moves_with_calls() {
    needs_root!();
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let t = T::with(TestDaemon::builder(), &format!(", address = \"127.0.0.1:{port}\"")).await;
    let version = [("service", "runtime.v1.RuntimeService"), ("method", "Version")];
    let before = parse_exposition(&scrape(port).await);
    for _ in 0..3 {
        t.rt().version(cri::VersionRequest::default()).await.unwrap_or_else(|s| t.fail("Version", &s));
    }
    let missing = cri::PodSandboxStatusRequest { pod_sandbox_id: "nope".into(), verbose: false };
    let missing = t.rt().pod_sandbox_status(missing).await.expect_err("an unknown pod");
    assert_eq!(missing.code(), crius_testkit::tonic::Code::NotFound);
    let pod = t.pod("metrics").await;

    let after = parse_exposition(&scrape(port).await);
    let requests = "crius_grpc_requests_total";
    assert_eq!(value_of(&after, requests, &version) - value_of(&before, requests, &version), 3.0);
    let not_found = [("method", "PodSandboxStatus"), ("code", "NotFound")];
    assert_eq!(value_of(&after, "crius_grpc_errors_total", &not_found), 1.0);
    let latency = [("method", "Version")];
    assert!(value_of(&after, "crius_grpc_request_duration_seconds_count", &latency) >= 3.0);
    // The pod's start: one observation per step of its timeline, and the total.
    let info = t.td.pod_info(&pod.id).await.unwrap_or_else(|e| panic!("verbose status: {e}"));
    let steps = info.raw["timeline"].as_array().cloned().unwrap_or_default();
    let steps: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(steps, crius_testkit::CRASH_STEPS.iter().filter(|s| **s != "host_ports").copied().collect::<Vec<_>>());
    for step in steps {
        let n = value_of(&after, "crius_pod_start_step_duration_seconds_count", &[("step", step)]);
        assert_eq!(n, 1.0, "step {step}");
    }
    assert_eq!(value_of(&after, "crius_pod_start_duration_seconds_count", &[]), 1.0);
    assert_eq!(value_of(&after, "crius_pods", &[("state", "ready")]), 1.0);
    assert!(value_of(&after, "crius_cni_operation_duration_seconds_count", &[("operation", "setup")]) >= 1.0);

    // Pulling, creating and starting a container moves the image and container metrics.
    let image = t.pull().await;
    t.run(&pod, "app", &image, "sleep 3600").await;
    let last = parse_exposition(&scrape(port).await);
    assert!(value_of(&last, "crius_image_pull_bytes_total", &[]) > 0.0);
    assert_eq!(value_of(&last, "crius_image_pull_duration_seconds_count", &[]), 1.0);
    assert_eq!(value_of(&last, "crius_container_create_duration_seconds_count", &[]), 1.0);
    assert_eq!(value_of(&last, "crius_runtime_operation_duration_seconds_count", &[("operation", "start")]), 1.0);
    assert_eq!(value_of(&last, "crius_containers", &[("state", "running")]), 1.0);
    // One step histogram for both calls: each step of each call observed once.
    let step_count = "crius_container_step_duration_seconds_count";
    for (call, step) in [
        ("create", "reserve"),
        ("create", "rootfs"),
        ("create", "runtime_create"),
        ("create", "state_created"),
        ("start", "lock"),
        ("start", "runtime_start"),
        ("start", "state_running"),
    ] {
        assert_eq!(value_of(&last, step_count, &[("call", call), ("step", step)]), 1.0, "{call} {step}");
    }
    assert_eq!(value_of(&last, step_count, &[("call", "create"), ("step", "runtime_start")]), 0.0);

    // A monitor killed under a ready pod is counted, once.
    assert_eq!(value_of(&last, "crius_pod_monitor_exits_total", &[]), 0.0);
    let monitor = info.monitor();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL)
        .expect("kill the pod's monitor");
    let not_ready = cri::PodSandboxState::SandboxNotready;
    if let Err(e) = t.td.wait_pod_state(&pod.id, not_ready, Duration::from_secs(15)).await {
        panic!("{e}\n{}", t.td.log_tail(40));
    }
    let dead = parse_exposition(&scrape(port).await);
    assert_eq!(value_of(&dead, "crius_pod_monitor_exits_total", &[]), 1.0);
    assert_eq!(value_of(&dead, "crius_pods", &[("state", "not_ready")]), 1.0);
    t.finish().await;
}

#[test]
fn the_exposition_parser_reads_labels_and_rejects_garbage() {
    let (name, labels, value) = parse_sample(r#"a_total{x="1",y="q\"uote"} 2.5"#).expect("a sample");
    assert_eq!((name.as_str(), labels["x"].as_str(), labels["y"].as_str(), value), ("a_total", "1", "q\"uote", 2.5));
    assert_eq!(parse_sample("b 3").map(|s| s.2), Some(3.0));
    assert_eq!(parse_sample(r#"c_bucket{le="+Inf"} +Inf"#).map(|s| s.2), Some(f64::INFINITY));
    assert!(parse_sample("not a sample").is_none());
    assert!(parse_sample(r#"d{x="unterminated} 1"#).is_none());
}

/// Latency of the stats Lists with 50 running pods of one container each (p50/p95 printed).
/// Slow (it starts 50 pods): `cargo test --test stats -- --ignored --nocapture stats_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn stats_latency_with_50_pods() {
    needs_root!();
    const PODS: usize = 50;
    const CALLS: usize = 40;
    let t = T::with(TestDaemon::builder().bridge_network(), "").await;
    let image = t.pull().await;
    for i in 0..PODS {
        let pod = t.pod(&format!("lat-{i}")).await;
        t.run(&pod, "app", &image, "sleep 3600").await;
    }
    let percentiles = |mut v: Vec<Duration>| {
        v.sort();
        let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
        (at(50), at(95))
    };
    let mut containers = Vec::new();
    let mut pods = Vec::new();
    for _ in 0..CALLS {
        let start = Instant::now();
        let r = t.rt().list_container_stats(cri::ListContainerStatsRequest { filter: None }).await;
        containers.push(start.elapsed());
        assert_eq!(r.unwrap_or_else(|s| t.fail("ListContainerStats", &s)).into_inner().stats.len(), PODS);
        let start = Instant::now();
        let r = t.rt().list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None }).await;
        pods.push(start.elapsed());
        assert_eq!(r.unwrap_or_else(|s| t.fail("ListPodSandboxStats", &s)).into_inner().stats.len(), PODS);
    }
    let (c50, c95) = percentiles(containers);
    let (p50, p95) = percentiles(pods);
    eprintln!(
        "{PODS} pods, {CALLS} calls each: ListContainerStats p50 {c50:?} p95 {c95:?}; ListPodSandboxStats p50 {p50:?} p95 {p95:?}"
    );
    t.finish().await;
}
