//! The measurements, phase by phase. Every pod is named `crius-bench-<run id>-...`, labelled with
//! the run id, and tracked from the moment its id is known, so cleanup can always find it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic::{Code, Status};

mod streaming;
mod timeline;

use crate::procfs::{self, Mem, kib_to_mib};
use crate::report::{Params, Row, Status as RowStatus};

/// Every pod this tool makes has a name starting with this (then the run id).
pub const NAME_PREFIX: &str = "crius-bench-";
/// Pod metadata namespace and label key.
pub const POD_NAMESPACE: &str = "crius-bench";
pub const RUN_LABEL: &str = "crius-bench/run";

pub struct Ctx {
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
    /// The label of the runtime in messages ("not supported by <name>").
    pub name: String,
    pub run_id: String,
    pub timeout: Duration,
    /// Pods made and not yet removed.
    pub tracked: Arc<Mutex<BTreeSet<String>>>,
    /// Rows measured so far (kept outside the benchmark future, so an interrupted run still
    /// reports them).
    pub rows: Arc<Mutex<Vec<Row>>>,
    /// Top of the pods' cgroup parents ("" for none): `<top>/<run id>/<pod name>`.
    pub cgroup_top: String,
    /// Pods get `<log_dir>/<pod name>` as their log directory when set.
    pub log_dir: Option<PathBuf>,
    pub daemon_pid: Option<i32>,
    pub helper_patterns: Vec<String>,
    pub params: Params,
    seq: AtomicUsize,
}

/// A call's latency in ms and its result.
type Timed<T> = (f64, Result<T, Status>);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Awaits a CRI call with a deadline, timing it.
pub async fn timed<T, F>(timeout: Duration, fut: F) -> Timed<T>
where
    F: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let start = Instant::now();
    let r = tokio::time::timeout(timeout, fut).await;
    let elapsed = ms(start.elapsed());
    match r {
        Ok(r) => (elapsed, r.map(tonic::Response::into_inner)),
        Err(_) => (elapsed, Err(Status::deadline_exceeded(format!("no answer within {timeout:?}")))),
    }
}

fn describe(s: &Status) -> String {
    if s.message().is_empty() { format!("{:?}", s.code()) } else { format!("{:?}: {}", s.code(), s.message()) }
}

/// A series of attempts of one measurement.
pub struct Series {
    key: String,
    title: String,
    unit: &'static str,
    samples: Vec<f64>,
    attempts: usize,
    failures: usize,
    first_error: Option<String>,
    unsupported: Option<String>,
    skipped: Option<String>,
}

impl Series {
    pub fn new(key: &str, title: impl Into<String>) -> Series {
        Series::with_unit(key, title, "ms")
    }

    pub fn with_unit(key: &str, title: impl Into<String>, unit: &'static str) -> Series {
        Series {
            key: key.into(),
            title: title.into(),
            unit,
            samples: Vec::new(),
            attempts: 0,
            failures: 0,
            first_error: None,
            unsupported: None,
            skipped: None,
        }
    }

    /// Records one attempt; `measured` false for warm-up attempts (their failures still count).
    /// Returns whether it succeeded.
    pub fn record<T>(&mut self, elapsed: f64, r: &Result<T, Status>, measured: bool) -> bool {
        match r {
            Ok(_) => {
                if measured {
                    self.attempts += 1;
                    self.samples.push(elapsed);
                }
                true
            }
            Err(s) => {
                self.error(s);
                false
            }
        }
    }

    pub fn error(&mut self, s: &Status) {
        if s.code() == Code::Unimplemented {
            self.unsupported.get_or_insert_with(|| s.message().to_string());
        } else {
            self.attempts += 1;
            self.failures += 1;
            self.first_error.get_or_insert_with(|| describe(s));
        }
    }

    pub fn fail(&mut self, message: impl Into<String>) {
        self.attempts += 1;
        self.failures += 1;
        self.first_error.get_or_insert_with(|| message.into());
    }

    pub fn push(&mut self, v: f64) {
        self.attempts += 1;
        self.samples.push(v);
    }

    pub fn unsupported(&self) -> bool {
        self.unsupported.is_some()
    }

    pub fn mark_unsupported(&mut self, message: impl Into<String>) {
        self.unsupported.get_or_insert_with(|| message.into());
    }

    pub fn skip(&mut self, reason: impl Into<String>) {
        self.skipped.get_or_insert_with(|| reason.into());
    }

    pub fn into_row(self, runtime: &str) -> Row {
        let mut row = Row::series(&self.key, &self.title, self.unit, &self.samples);
        row.attempts = self.attempts;
        row.failures = self.failures;
        if let Some(msg) = self.unsupported {
            row.status = RowStatus::NotSupported;
            row.stats = None;
            row.message = format!("not supported by {runtime}: {msg}");
        } else if self.failures > 0 {
            row.status = RowStatus::Failed;
            row.message = format!(
                "{} of {} failed; first: {}",
                self.failures,
                self.attempts,
                self.first_error.unwrap_or_default()
            );
        } else if let Some(reason) = self.skipped.filter(|_| self.samples.is_empty()) {
            row.status = RowStatus::Skipped;
            row.message = format!("skipped: {reason}");
        } else if self.samples.is_empty() {
            row.status = RowStatus::Skipped;
            row.message = "skipped: nothing was measured".into();
        }
        row
    }
}

/// A pod made by the benchmark.
#[derive(Clone)]
struct Pod {
    id: String,
    config: cri::PodSandboxConfig,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channel: Channel,
        name: String,
        run_id: String,
        timeout: Duration,
        cgroup_top: String,
        log_dir: Option<PathBuf>,
        daemon_pid: Option<i32>,
        helper_patterns: Vec<String>,
        params: Params,
    ) -> Ctx {
        Ctx {
            rt: crate::client::runtime(channel.clone()),
            img: crate::client::image(channel),
            name,
            run_id,
            timeout,
            tracked: Arc::default(),
            rows: Arc::default(),
            cgroup_top,
            log_dir,
            daemon_pid,
            helper_patterns,
            params,
            seq: AtomicUsize::new(0),
        }
    }

    pub fn prefix(&self) -> String {
        format!("{NAME_PREFIX}{}-", self.run_id)
    }

    fn push_row(&self, row: Row) {
        eprintln!(
            "[crius-bench {}]   {:<58} {}",
            self.name,
            row.title,
            match (&row.status, &row.stats) {
                (RowStatus::Ok, Some(s)) if s.n > 1 => format!(
                    "p50 {} p95 {} max {} {}",
                    crate::report::fmt_num(s.p50),
                    crate::report::fmt_num(s.p95),
                    crate::report::fmt_num(s.max),
                    row.unit
                ),
                (RowStatus::Ok, Some(s)) => format!("{} {}", crate::report::fmt_num(s.p50), row.unit),
                _ => row.message.clone(),
            }
        );
        lock(&self.rows).push(row);
    }

    fn push_series(&self, s: Series) {
        self.push_row(s.into_row(&self.name));
    }

    fn phase(&self, what: &str) {
        eprintln!("[crius-bench {}] {what}", self.name);
    }

    /// A new pod name: `crius-bench-<run>-<kind>-<n>` (a valid DNS label, at most 63 chars).
    fn next_name(&self, kind: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}{kind}-{n}", self.prefix())
    }

    /// A pod config as a kubelet would send it: its own network namespace and hostname unless
    /// `host`, PID namespace per container, its own IPC namespace, a cgroup parent, a log
    /// directory.
    pub fn pod_config(&self, name: &str, host: bool) -> cri::PodSandboxConfig {
        let network = if host { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod };
        let cgroup_parent = if self.cgroup_top.is_empty() {
            String::new()
        } else {
            format!("/{}/{}/{name}", self.cgroup_top, self.run_id)
        };
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("{name}-uid"),
                namespace: POD_NAMESPACE.into(),
                attempt: 0,
            }),
            // A kubelet sets no hostname for host-network pods (they keep the node's UTS namespace).
            hostname: if host { String::new() } else { name.chars().take(63).collect() },
            log_directory: self
                .log_dir
                .as_ref()
                .map(|d| d.join(name).to_string_lossy().into_owned())
                .unwrap_or_default(),
            labels: HashMap::from([(RUN_LABEL.to_string(), self.run_id.clone())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent,
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: network as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container_config(&self, name: &str, image: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
            log_path: if self.log_dir.is_some() { format!("{name}.log") } else { String::new() },
            labels: HashMap::from([(RUN_LABEL.to_string(), self.run_id.clone())]),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Pod as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox of a new pod, timed; the pod is tracked as soon as its id is known.
    async fn run_pod(&self, kind: &str, host: bool) -> Timed<Pod> {
        let name = self.next_name(kind);
        run_pod_with(self.rt.clone(), self.timeout, self.tracked.clone(), self.pod_config(&name, host)).await
    }

    async fn stop_pod(&self, id: &str) -> Timed<()> {
        let req = cri::StopPodSandboxRequest { pod_sandbox_id: id.into() };
        let (t, r) = timed(self.timeout, self.rt.clone().stop_pod_sandbox(req)).await;
        (t, r.map(drop))
    }

    async fn remove_pod(&self, id: &str) -> Timed<()> {
        let req = cri::RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        let (t, r) = timed(self.timeout, self.rt.clone().remove_pod_sandbox(req)).await;
        if r.is_ok() {
            lock(&self.tracked).remove(id);
        }
        (t, r.map(drop))
    }

    /// Stops and removes pods, `width` at a time, unmeasured; failures are reported on stderr
    /// (the final cleanup retries them).
    async fn teardown(&self, ids: Vec<String>, width: usize) {
        let mut set = JoinSet::new();
        let mut it = ids.into_iter();
        loop {
            while set.len() < width.max(1) {
                let Some(id) = it.next() else { break };
                let (rt, timeout, tracked) = (self.rt.clone(), self.timeout, self.tracked.clone());
                set.spawn(async move { teardown_pod(rt, timeout, tracked, id).await });
            }
            match set.join_next().await {
                Some(Ok(Err(e))) => eprintln!("[crius-bench {}] teardown: {e}", self.name),
                Some(_) => {}
                None => break,
            }
        }
    }

    fn memory_rows(&self, key_suffix: &str, title_suffix: &str) {
        let Some(pid) = self.daemon_pid else {
            let why = "skipped: the daemon's pid is unknown (no process owns the socket; give --daemon-pid)";
            for (k, t) in [("daemon_rss", "daemon RSS"), ("daemon_pss", "daemon Pss")] {
                self.push_row(Row::without(
                    &format!("{k}_{key_suffix}"),
                    &format!("{t}, {title_suffix}"),
                    "MiB",
                    RowStatus::Skipped,
                    why,
                ));
            }
            return;
        };
        match procfs::memory_of(pid) {
            Some(m) => {
                self.push_row(Row::value(
                    &format!("daemon_rss_{key_suffix}"),
                    &format!("daemon RSS, {title_suffix}"),
                    "MiB",
                    kib_to_mib(m.rss_kib),
                ));
                self.push_row(Row::value(
                    &format!("daemon_pss_{key_suffix}"),
                    &format!("daemon Pss, {title_suffix}"),
                    "MiB",
                    kib_to_mib(m.pss_kib),
                ));
            }
            None => {
                for (k, t) in [("daemon_rss", "daemon RSS"), ("daemon_pss", "daemon Pss")] {
                    self.push_row(Row::without(
                        &format!("{k}_{key_suffix}"),
                        &format!("{t}, {title_suffix}"),
                        "MiB",
                        RowStatus::Failed,
                        format!("cannot read /proc/{pid}/smaps_rollup (daemon gone?)"),
                    ));
                }
            }
        }
    }

    /// Memory of the helper processes of `pods` (per pod: the matched roots and their
    /// descendants).
    fn helper_rows(&self, pods: &[String]) {
        let n = pods.len();
        let titles = [
            ("helper_pss_per_pod", format!("helper Pss per pod ({n} pods)"), "MiB"),
            ("helper_rss_per_pod", format!("helper RSS per pod ({n} pods)"), "MiB"),
            ("helper_procs_per_pod", format!("helper processes per pod ({n} pods)"), "procs"),
            ("helper_pss_total", format!("helper Pss, all {n} pods"), "MiB"),
        ];
        let skip = |why: String| {
            for (k, t, u) in &titles {
                self.push_row(Row::without(k, t, u, RowStatus::Skipped, format!("skipped: {why}")));
            }
        };
        if self.helper_patterns.is_empty() {
            return skip(format!("no --helper-process-names for {}", self.name));
        }
        if pods.is_empty() {
            return skip("no pods are running".into());
        }
        let ids: HashSet<String> = pods.iter().cloned().collect();
        let groups = procfs::helper_groups(&procfs::snapshot(), &self.helper_patterns, &ids);
        if groups.is_empty() {
            for (k, t, u) in &titles {
                self.push_row(Row::without(
                    k,
                    t,
                    u,
                    RowStatus::Failed,
                    format!("no process matching {:?} names any of the {n} pods", self.helper_patterns),
                ));
            }
            return;
        }
        let mut pss = Vec::new();
        let mut rss = Vec::new();
        let mut procs = Vec::new();
        let mut total = Mem::default();
        for pids in groups.values() {
            let mut m = Mem::default();
            for pid in pids {
                m.add(procfs::memory_of(*pid).unwrap_or_default());
            }
            total.add(m);
            pss.push(kib_to_mib(m.pss_kib));
            rss.push(kib_to_mib(m.rss_kib));
            procs.push(pids.len() as f64);
        }
        let mut rows = vec![
            Row::series(titles[0].0, &titles[0].1, "MiB", &pss),
            Row::series(titles[1].0, &titles[1].1, "MiB", &rss),
            Row::series(titles[2].0, &titles[2].1, "procs", &procs),
            Row::value(titles[3].0, &titles[3].1, "MiB", kib_to_mib(total.pss_kib)),
        ];
        if groups.len() < n {
            for r in &mut rows {
                r.status = RowStatus::Failed;
                r.message = format!("helpers found for {} of {n} pods", groups.len());
            }
        }
        for r in rows {
            self.push_row(r);
        }
    }

    /// Whether an RPC is implemented: a call with a made-up id answers UNIMPLEMENTED, or
    /// something else (NotFound...). Some(message) when unimplemented.
    async fn probe_unimplemented<T, F>(&self, fut: F) -> Option<String>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match timed(self.timeout, fut).await.1 {
            Err(s) if s.code() == Code::Unimplemented => Some(s.message().to_string()),
            _ => None,
        }
    }

    /// Every phase, in order. Rows go to `self.rows` as they are measured.
    pub async fn run(&self) {
        let p = self.params.clone();
        let cpu_start = self.daemon_pid.and_then(procfs::cpu_ms_of);
        self.phase("memory, idle");
        self.memory_rows("idle", "idle (no pods of this run)");
        self.phase_pull(&p).await;
        self.phase_sequential(&p, true).await;
        self.phase_sequential(&p, false).await;
        self.phase_concurrent(&p).await;
        self.phase_pod_to_running(&p).await;
        self.phase_many(&p).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.phase("memory, after");
        self.memory_rows("after", "after removing every pod");
        let title = "daemon CPU time (user + system), whole run";
        match (cpu_start, self.daemon_pid.and_then(procfs::cpu_ms_of)) {
            (Some(a), Some(b)) => self.push_row(Row::value("daemon_cpu", title, "ms", b - a)),
            _ => self.push_row(Row::without(
                "daemon_cpu",
                title,
                "ms",
                RowStatus::Skipped,
                "skipped: the daemon's /proc/PID/stat is unreadable",
            )),
        }
    }

    async fn phase_pull(&self, p: &Params) {
        self.phase("PullImage");
        let mut cold = Series::new("pull_cold", "PullImage, cold (after RemoveImage)");
        let mut warm = Series::new("pull_warm", "PullImage, warm (image present)");
        let Some(image) = p.image.clone() else {
            cold.skip("no --image given");
            warm.skip("no --image given");
            self.push_series(cold);
            self.push_series(warm);
            return;
        };
        let spec = cri::ImageSpec { image: image.clone(), ..Default::default() };
        for i in 0..p.warmup + p.count {
            let req = cri::RemoveImageRequest { image: Some(spec.clone()) };
            let (_, r) = timed(self.timeout, self.img.clone().remove_image(req)).await;
            match r {
                Err(s) if s.code() == Code::Unimplemented => {
                    cold.mark_unsupported(with_step("RemoveImage", &s).message());
                    break;
                }
                Err(s) if s.code() != Code::NotFound => {
                    cold.fail(format!("RemoveImage: {}", describe(&s)));
                    continue;
                }
                _ => {}
            }
            let req = cri::PullImageRequest { image: Some(spec.clone()), ..Default::default() };
            let (t, r) = timed(self.timeout, self.img.clone().pull_image(req)).await;
            cold.record(t, &r, i >= p.warmup);
            if cold.unsupported() {
                break;
            }
        }
        for i in 0..p.warmup + p.count {
            let req = cri::PullImageRequest { image: Some(spec.clone()), ..Default::default() };
            let (t, r) = timed(self.timeout, self.img.clone().pull_image(req)).await;
            warm.record(t, &r, i >= p.warmup);
            if warm.unsupported() {
                break;
            }
        }
        self.push_series(cold);
        self.push_series(warm);
        self.phase_pull_layers_present(p).await;
    }

    /// A new image (its own config) whose layers are all in the store already: what a node
    /// pays for a rebuilt image that changed only its config, or a second tag of a base.
    async fn phase_pull_layers_present(&self, p: &Params) {
        let mut present = Series::new("pull_layers_present", "PullImage, new image whose layers are all present");
        let Some(other) = p.same_layers_image.clone() else {
            present.skip("no --same-layers-image given");
            self.push_series(present);
            return;
        };
        let spec = cri::ImageSpec { image: other, ..Default::default() };
        for i in 0..p.warmup + p.count {
            let req = cri::RemoveImageRequest { image: Some(spec.clone()) };
            let (_, r) = timed(self.timeout, self.img.clone().remove_image(req)).await;
            if let Err(s) = r
                && s.code() != Code::NotFound
            {
                present.fail(format!("RemoveImage: {}", describe(&s)));
                continue;
            }
            let req = cri::PullImageRequest { image: Some(spec.clone()), ..Default::default() };
            let (t, r) = timed(self.timeout, self.img.clone().pull_image(req)).await;
            present.record(t, &r, i >= p.warmup);
            if present.unsupported() {
                break;
            }
        }
        let req = cri::RemoveImageRequest { image: Some(spec) };
        let _ = timed(self.timeout, self.img.clone().remove_image(req)).await;
        self.push_series(present);
    }

    /// N pods one after another (after W warm-up pods made and removed), kept until all are up;
    /// then each is stopped, then each removed.
    async fn phase_sequential(&self, p: &Params, host: bool) {
        let (key, label, kind) =
            if host { ("host", "host network", "host") } else { ("netns", "pod network (own netns)", "net") };
        self.phase(&format!("RunPodSandbox x{}, {label}", p.count));
        let mut run = Series::new(&format!("run_pod_{key}"), format!("RunPodSandbox, {label}"));
        let mut stop = Series::new(&format!("stop_pod_{key}"), format!("StopPodSandbox, {label}"));
        let mut remove = Series::new(&format!("remove_pod_{key}"), format!("RemovePodSandbox, {label}"));
        let mut total =
            Series::new(&format!("seq_{key}_total"), format!("{} pods one after another, {label}: total", p.count));
        for _ in 0..p.warmup {
            let (t, r) = self.run_pod(kind, host).await;
            run.record(t, &r, false);
            if let Ok(pod) = r {
                let (t, r) = self.stop_pod(&pod.id).await;
                stop.record(t, &r, false);
                let (t, r) = self.remove_pod(&pod.id).await;
                remove.record(t, &r, false);
            }
            if run.unsupported() {
                break;
            }
        }
        let mut pods = Vec::new();
        let start = Instant::now();
        for _ in 0..p.count {
            if run.unsupported() {
                break;
            }
            let (t, r) = self.run_pod(kind, host).await;
            if run.record(t, &r, true) {
                pods.extend(r.ok());
            }
        }
        if !pods.is_empty() && pods.len() == p.count {
            total.push(ms(start.elapsed()));
        } else if run.unsupported() {
            total.mark_unsupported("RunPodSandbox");
        } else {
            total.fail(format!("{} of {} pods started", pods.len(), p.count));
        }
        let ids: Vec<String> = pods.iter().map(|p| p.id.clone()).collect();
        self.pod_step_rows(key, label, &ids).await;
        for pod in &pods {
            let (t, r) = self.stop_pod(&pod.id).await;
            stop.record(t, &r, true);
        }
        for pod in &pods {
            let (t, r) = self.remove_pod(&pod.id).await;
            remove.record(t, &r, true);
        }
        for s in [run, stop, remove, total] {
            self.push_series(s);
        }
    }

    /// `concurrency` pods started at once (pod network), `rounds` times: per-pod latency and the
    /// wall time of each round; every pod must start.
    async fn phase_concurrent(&self, p: &Params) {
        let c = p.concurrency;
        self.phase(&format!("RunPodSandbox, {c} at once x{} rounds", p.rounds));
        let mut per_pod = Series::new("concurrent_pod", format!("RunPodSandbox, {c} at once: per pod"));
        let mut wall = Series::new("concurrent_wall", format!("{c} pods at once: wall time"));
        for _ in 0..p.rounds {
            let mut set = JoinSet::new();
            let start = Instant::now();
            for _ in 0..c {
                let config = self.pod_config(&self.next_name("conc"), false);
                let (rt, timeout, tracked) = (self.rt.clone(), self.timeout, self.tracked.clone());
                set.spawn(run_pod_with(rt, timeout, tracked, config));
            }
            let mut ids = Vec::new();
            let mut ok = 0;
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok((t, r)) => {
                        if per_pod.record(t, &r, true) {
                            ok += 1;
                        }
                        ids.extend(r.ok().map(|pod| pod.id));
                    }
                    Err(e) => per_pod.fail(format!("task: {e}")),
                }
            }
            let elapsed = ms(start.elapsed());
            if ok == c {
                wall.push(elapsed);
            } else if per_pod.unsupported() {
                wall.mark_unsupported("RunPodSandbox");
            } else {
                wall.fail(format!("{ok} of {c} pods started"));
            }
            self.teardown(ids, c).await;
            if per_pod.unsupported() {
                break;
            }
        }
        self.push_series(per_pod);
        self.push_series(wall);
    }

    /// RunPodSandbox + CreateContainer + StartContainer of a fresh pod (what a kubelet waits for).
    async fn phase_pod_to_running(&self, p: &Params) {
        self.phase("pod to running");
        let mut series =
            Series::new("pod_to_running", "pod to running (RunPodSandbox + CreateContainer + StartContainer)");
        let Some(image) = p.image.clone() else {
            // Still find out whether the runtime has containers at all.
            let probe = self
                .probe_unimplemented(self.rt.clone().create_container(cri::CreateContainerRequest {
                    pod_sandbox_id: "crius-bench-probe".into(),
                    ..Default::default()
                }))
                .await;
            match probe {
                Some(msg) => series.mark_unsupported(format!("CreateContainer: {msg}")),
                None => series.skip("no --image given"),
            }
            return self.push_series(series);
        };
        for i in 0..p.warmup + p.count {
            let start = Instant::now();
            let (_, r) = self.run_pod("ptr", false).await;
            let pod = match r {
                Ok(pod) => pod,
                Err(s) => {
                    series.error(&s);
                    if series.unsupported() {
                        break;
                    }
                    continue;
                }
            };
            let result = self.create_and_start(&pod, "c", &image).await;
            let elapsed = ms(start.elapsed());
            match result {
                Ok(_) => series.record(elapsed, &Ok::<(), Status>(()), i >= p.warmup),
                Err((what, s)) => {
                    series.error(&with_step(&what, &s));
                    false
                }
            };
            self.teardown(vec![pod.id], 1).await;
            if series.unsupported() {
                break;
            }
        }
        self.push_series(series);
    }

    /// CreateContainer then StartContainer; the error says which step failed.
    async fn create_and_start(
        &self,
        pod: &Pod,
        name: &str,
        image: &str,
    ) -> Result<(String, f64, f64), (String, Status)> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(self.container_config(name, image)),
            sandbox_config: Some(pod.config.clone()),
        };
        let (tc, r) = timed(self.timeout, self.rt.clone().create_container(req)).await;
        let id = r.map_err(|s| ("CreateContainer".to_string(), s))?.container_id;
        let req = cri::StartContainerRequest { container_id: id.clone() };
        let (ts, r) = timed(self.timeout, self.rt.clone().start_container(req)).await;
        r.map_err(|s| ("StartContainer".to_string(), s))?;
        Ok((id, tc, ts))
    }

    /// `list_pods` pods present: List/Status latencies, memory; then containers in them.
    async fn phase_many(&self, p: &Params) {
        let n = p.list_pods;
        self.phase(&format!("{n} pods present"));
        let mut run = Series::new("run_pod_many", format!("RunPodSandbox, pod network, up to {n} present"));
        let mut pods = Vec::new();
        for _ in 0..n {
            let (t, r) = self.run_pod("many", false).await;
            if run.record(t, &r, true) {
                pods.extend(r.ok());
            } else if run.unsupported() {
                break;
            }
        }
        self.push_series(run);

        let mut list = Series::new("list_pods", format!("ListPodSandbox with {n} pods"));
        for i in 0..p.warmup + p.rpc_count {
            let (t, r) =
                timed(self.timeout, self.rt.clone().list_pod_sandbox(cri::ListPodSandboxRequest::default())).await;
            if let Ok(resp) = &r {
                let ours = resp.items.iter().filter(|s| s.labels.get(RUN_LABEL) == Some(&self.run_id)).count();
                if ours != pods.len() {
                    list.fail(format!("listed {ours} of this run's pods, expected {}", pods.len()));
                    continue;
                }
            }
            list.record(t, &r, i >= p.warmup);
            if list.unsupported() {
                break;
            }
        }
        self.push_series(list);

        let mut status = Series::new("pod_status", format!("PodSandboxStatus with {n} pods"));
        if pods.is_empty() {
            status.skip("no pods");
        }
        for i in 0..(p.warmup + p.rpc_count) * usize::from(!pods.is_empty()) {
            let id = pods[i % pods.len()].id.clone();
            let req = cri::PodSandboxStatusRequest { pod_sandbox_id: id, verbose: false };
            let (t, r) = timed(self.timeout, self.rt.clone().pod_sandbox_status(req)).await;
            status.record(t, &r, i >= p.warmup);
            if status.unsupported() {
                break;
            }
        }
        self.push_series(status);

        tokio::time::sleep(Duration::from_millis(300)).await;
        self.phase(&format!("memory with {n} pods"));
        self.memory_rows("pods", &format!("{n} pods"));
        self.helper_rows(&pods.iter().map(|p| p.id.clone()).collect::<Vec<_>>());

        self.phase_containers(p, &pods).await;

        self.phase(&format!("removing the {n} pods"));
        self.teardown(pods.into_iter().map(|p| p.id).collect(), 4).await;
    }

    async fn phase_containers(&self, p: &Params, pods: &[Pod]) {
        let k = p.containers;
        let mut create = Series::new("create_container", "CreateContainer");
        let mut start = Series::new("start_container", "StartContainer");
        let mut list = Series::new("list_containers", format!("ListContainers with {k} containers"));
        let mut status = Series::new("container_status", format!("ContainerStatus with {k} containers"));
        let mut exec = Series::new("exec_sync", "ExecSync `true`");
        let mut mem_note = None;

        let mut containers = Vec::new();
        match (&p.image, pods.is_empty()) {
            (None, _) | (_, true) => {
                let why = if p.image.is_none() { "no --image given" } else { "no pods" };
                let probes = [
                    self.probe_unimplemented(self.rt.clone().create_container(cri::CreateContainerRequest {
                        pod_sandbox_id: "crius-bench-probe".into(),
                        ..Default::default()
                    }))
                    .await,
                    self.probe_unimplemented(
                        self.rt
                            .clone()
                            .start_container(cri::StartContainerRequest { container_id: "crius-bench-probe".into() }),
                    )
                    .await,
                ];
                for (s, probe) in [(&mut create, &probes[0]), (&mut start, &probes[1])] {
                    match probe {
                        Some(m) => s.mark_unsupported(m.clone()),
                        None => s.skip(why),
                    }
                }
                mem_note = Some(why.to_string());
            }
            (Some(image), false) => {
                self.phase(&format!("{k} containers in {} pods", pods.len()));
                for i in 0..k {
                    let pod = &pods[i % pods.len()];
                    match self.create_and_start(pod, &format!("c{i}"), image).await {
                        Ok((id, tc, ts)) => {
                            if i >= p.warmup {
                                create.push(tc);
                                start.push(ts);
                            }
                            containers.push(id);
                        }
                        Err((what, s)) => {
                            let series = if what == "CreateContainer" { &mut create } else { &mut start };
                            series.error(&s);
                            if series.unsupported() {
                                if what == "CreateContainer" {
                                    let probe = self
                                        .probe_unimplemented(self.rt.clone().start_container(
                                            cri::StartContainerRequest { container_id: "crius-bench-probe".into() },
                                        ))
                                        .await;
                                    match probe {
                                        Some(m) => start.mark_unsupported(m),
                                        None => start.skip("CreateContainer is not supported"),
                                    }
                                }
                                mem_note = Some(format!("{what} is not supported"));
                                break;
                            }
                        }
                    }
                }
            }
        }

        // ListContainers is probed even without containers; with fewer than asked for it is
        // measured only when every container was made.
        let list_probe =
            self.probe_unimplemented(self.rt.clone().list_containers(cri::ListContainersRequest::default())).await;
        if let Some(m) = list_probe {
            list.mark_unsupported(m);
        } else if containers.len() < k {
            list.skip(format!("{} of {k} containers running", containers.len()));
        } else {
            for i in 0..p.warmup + p.rpc_count {
                let (t, r) =
                    timed(self.timeout, self.rt.clone().list_containers(cri::ListContainersRequest::default())).await;
                if let Ok(resp) = &r {
                    let ours = resp.containers.iter().filter(|c| c.labels.get(RUN_LABEL) == Some(&self.run_id)).count();
                    if ours != containers.len() {
                        list.fail(format!("listed {ours} of this run's containers, expected {}", containers.len()));
                        continue;
                    }
                }
                list.record(t, &r, i >= p.warmup);
            }
        }

        if containers.is_empty() {
            let status_probe = self
                .probe_unimplemented(self.rt.clone().container_status(cri::ContainerStatusRequest {
                    container_id: "crius-bench-probe".into(),
                    verbose: false,
                }))
                .await;
            let exec_probe = self
                .probe_unimplemented(self.rt.clone().exec_sync(cri::ExecSyncRequest {
                    container_id: "crius-bench-probe".into(),
                    cmd: vec!["true".into()],
                    timeout: 10,
                }))
                .await;
            for (s, probe) in [(&mut status, status_probe), (&mut exec, exec_probe)] {
                match probe {
                    Some(m) => s.mark_unsupported(m),
                    None => s.skip("no container is running"),
                }
            }
        } else {
            for i in 0..p.warmup + p.rpc_count {
                let req = cri::ContainerStatusRequest {
                    container_id: containers[i % containers.len()].clone(),
                    verbose: false,
                };
                let (t, r) = timed(self.timeout, self.rt.clone().container_status(req)).await;
                if let Ok(resp) = &r {
                    let running =
                        resp.status.as_ref().map(|s| s.state) == Some(cri::ContainerState::ContainerRunning as i32);
                    if !running {
                        status.fail(format!("container {} is not running", containers[i % containers.len()]));
                        continue;
                    }
                }
                status.record(t, &r, i >= p.warmup);
                if status.unsupported() {
                    break;
                }
            }
            for i in 0..p.warmup + p.count {
                let req = cri::ExecSyncRequest {
                    container_id: containers[i % containers.len()].clone(),
                    cmd: vec!["true".into()],
                    timeout: 10,
                };
                let (t, r) = timed(self.timeout, self.rt.clone().exec_sync(req)).await;
                if let Ok(resp) = &r
                    && resp.exit_code != 0
                {
                    exec.fail(format!(
                        "`true` exited {}: {}",
                        resp.exit_code,
                        String::from_utf8_lossy(&resp.stderr).trim()
                    ));
                    continue;
                }
                exec.record(t, &r, i >= p.warmup);
                if exec.unsupported() {
                    break;
                }
            }
        }
        for s in [create, start, list, status, exec] {
            self.push_series(s);
        }
        self.container_step_rows(&containers).await;
        self.phase_stats(p, pods, containers.len()).await;
        self.phase_streaming(p, pods.first(), containers.first().map(String::as_str)).await;
        if containers.is_empty() {
            let why = mem_note.unwrap_or_else(|| "no container is running".into());
            for (key, t) in [("daemon_rss_containers", "daemon RSS"), ("daemon_pss_containers", "daemon Pss")] {
                self.push_row(Row::without(
                    key,
                    &format!("{t}, {} pods + {k} containers", pods.len()),
                    "MiB",
                    RowStatus::Skipped,
                    format!("skipped: {why}"),
                ));
            }
        } else {
            self.memory_rows("containers", &format!("{} pods + {} containers", pods.len(), containers.len()));
        }
    }
}

/// The error with the step named in front, unless its message names it already.
fn with_step(step: &str, s: &Status) -> Status {
    if s.message().contains(step) { s.clone() } else { Status::new(s.code(), format!("{step}: {}", s.message())) }
}

async fn run_pod_with(
    mut rt: RuntimeServiceClient<Channel>,
    timeout: Duration,
    tracked: Arc<Mutex<BTreeSet<String>>>,
    config: cri::PodSandboxConfig,
) -> Timed<Pod> {
    let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let (t, r) = timed(timeout, rt.run_pod_sandbox(req)).await;
    let r = r.map(|resp| {
        lock(&tracked).insert(resp.pod_sandbox_id.clone());
        Pod { id: resp.pod_sandbox_id, config }
    });
    (t, r)
}

/// Stop (errors ignored: remove stops too) then remove; NotFound counts as removed.
async fn teardown_pod(
    mut rt: RuntimeServiceClient<Channel>,
    timeout: Duration,
    tracked: Arc<Mutex<BTreeSet<String>>>,
    id: String,
) -> Result<(), String> {
    let _ = timed(timeout, rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() })).await;
    let (_, r) =
        timed(timeout, rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.clone() })).await;
    match r {
        Ok(_) => {}
        Err(s) if s.code() == Code::NotFound => {}
        Err(s) => return Err(format!("removing pod {id}: {}", describe(&s))),
    }
    lock(&tracked).remove(&id);
    Ok(())
}

/// Removes every pod whose name starts with `prefix`, and every tracked pod, until a listing
/// shows none (at least `passes` listings, a second apart, so pods whose creation was in flight
/// when the run was cut short are caught too). Returns the number removed and the errors.
pub async fn cleanup_pods(
    rt: &RuntimeServiceClient<Channel>,
    prefix: &str,
    tracked: &Arc<Mutex<BTreeSet<String>>>,
    timeout: Duration,
    passes: usize,
) -> (usize, Vec<String>) {
    let mut removed = 0;
    let mut errors = Vec::new();
    for pass in 0..passes.max(1) + 5 {
        let mut ids: BTreeSet<String> = lock(tracked).clone();
        match timed(timeout, rt.clone().list_pod_sandbox(cri::ListPodSandboxRequest::default())).await.1 {
            Ok(resp) => ids.extend(
                resp.items
                    .into_iter()
                    .filter(|s| s.metadata.as_ref().is_some_and(|m| m.name.starts_with(prefix)))
                    .map(|s| s.id),
            ),
            Err(s) => errors.push(format!("listing pods: {}", describe(&s))),
        }
        if ids.is_empty() && pass + 1 >= passes {
            break;
        }
        errors.clear();
        let mut set = JoinSet::new();
        for id in ids {
            let (rt, tracked) = (rt.clone(), tracked.clone());
            set.spawn(async move { teardown_pod(rt, timeout, tracked, id).await });
            while set.len() >= 8 {
                if let Some(r) = set.join_next().await {
                    tally(r, &mut removed, &mut errors);
                }
            }
        }
        while let Some(r) = set.join_next().await {
            tally(r, &mut removed, &mut errors);
        }
        if pass + 1 < passes {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    (removed, errors)
}

fn tally(r: Result<Result<(), String>, tokio::task::JoinError>, removed: &mut usize, errors: &mut Vec<String>) {
    match r {
        Ok(Ok(())) => *removed += 1,
        Ok(Err(e)) => errors.push(e),
        Err(e) => errors.push(format!("task: {e}")),
    }
}

/// Removes the empty cgroup directories under `<hierarchy>/<top>/<run>` (or every run's, when
/// `run` is None, and `top` itself when it is left empty) in every mounted hierarchy. A busy
/// directory is left alone.
pub fn cleanup_cgroups(top: &str, run: Option<&str>) -> usize {
    if top.is_empty() {
        return 0;
    }
    let mut removed = 0;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for mount in cgroup_mounts(&mountinfo) {
        let base = PathBuf::from(&mount).join(top.trim_matches('/'));
        let start = match run {
            Some(r) => base.join(r),
            None => base.clone(),
        };
        removed += rmdir_tree(&start);
        if run.is_some() {
            // The top itself, if no other run uses it.
            if std::fs::remove_dir(&base).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Mount points of cgroup and cgroup2 file systems, from mountinfo text.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| left.split_whitespace().nth(4).map(String::from))?
        })
        .collect()
}

/// rmdir bottom-up; returns how many were removed.
fn rmdir_tree(dir: &std::path::Path) -> usize {
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                removed += rmdir_tree(&e.path());
            }
        }
    }
    if std::fs::remove_dir(dir).is_ok() {
        removed += 1;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_rows_say_why() {
        let mut s = Series::new("k", "title");
        s.record(5.0, &Ok::<(), Status>(()), false);
        s.record(1.0, &Ok::<(), Status>(()), true);
        s.record(3.0, &Ok::<(), Status>(()), true);
        let row = s.into_row("crius");
        assert_eq!(row.status, RowStatus::Ok);
        assert_eq!(row.stats.as_ref().map(|s| (s.n, s.max)), Some((2, 3.0)), "warm-up left out");

        let mut s = Series::new("k", "t");
        s.record(1.0, &Err::<(), _>(Status::unimplemented("CreateContainer is not implemented")), true);
        let row = s.into_row("crius");
        assert_eq!(row.status, RowStatus::NotSupported);
        assert_eq!(row.message, "not supported by crius: CreateContainer is not implemented");
        assert!(row.stats.is_none(), "never a figure for an unsupported call");

        let mut s = Series::new("k", "t");
        s.record(1.0, &Ok::<(), Status>(()), true);
        s.record(1.0, &Err::<(), _>(Status::internal("boom")), true);
        let row = s.into_row("containerd");
        assert_eq!(row.status, RowStatus::Failed);
        assert_eq!(row.message, "1 of 2 failed; first: Internal: boom");
        assert_eq!(row.stats.map(|s| s.n), Some(1));

        let mut s = Series::new("k", "t");
        s.skip("no --image given");
        let row = s.into_row("x");
        assert_eq!((row.status, row.message.as_str()), (RowStatus::Skipped, "skipped: no --image given"));
    }

    #[test]
    fn cgroup_mounts_from_mountinfo() {
        let text = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
28 30 0:25 / /proc rw - proc proc rw
";
        assert_eq!(cgroup_mounts(text), vec!["/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpu,cpuacct"]);
    }

    #[test]
    fn rmdir_tree_removes_empty_dirs_only() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        std::fs::create_dir_all(top.join("run/a/b")).unwrap();
        std::fs::create_dir_all(top.join("run/c")).unwrap();
        std::fs::write(top.join("run/c/file"), "x").unwrap();
        assert_eq!(rmdir_tree(&top), 2, "a/b and a");
        assert!(top.join("run/c/file").exists());
    }
}
