//! Decorators around the domain's ports that time what passes through them: the binary wraps
//! its real adapters in these, so the domain records nothing itself.
//!
//! - [`PodStateTimeline`]: a pod's start timeline (PodRecord.timeline), once, when
//!   RunPodSandbox amends its Ready record with it.
//! - [`ContainerStateTimeline`]: the steps of CreateContainer and of StartContainer
//!   (ContainerRecord.timeline), each once, when the call amends the record with them.
//! - [`PodMonitorExits`]: pods whose monitor died while they were ready (an observer, as no
//!   port call shows it).
//! - [`TimedNetwork`], [`TimedHostPorts`]: CNI and hostport latency.
//! - [`TimedImages`]: image pull bytes, durations and failures.
//! - [`TimedContainerMonitor`]: runtime create and start through the monitor.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crius_core::Result;
use crius_core::container::model::{ContainerRecord, ContainerState};
use crius_core::image::{Digest, FsUsage, ImageRecord, ImageRef, RegistryAuth};
use crius_core::ports::container::{ContainerLaunch, ContainerMonitor};
use crius_core::ports::image::ImageStore;
use crius_core::ports::network::{
    HostPortPod, HostPortResyncReport, HostPorts, NetworkReadiness, NetworkRequest, NetworkStatus, PodNetwork,
};
use crius_core::ports::{PodObserver, StateStore};
use crius_core::sandbox::model::{PodRecord, PodState, PortMapping, ProcRef, StepTiming};

use crate::registry::Metrics;

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The end of a timeline's last step: with contiguous steps, the whole call.
fn end_us(timeline: &[StepTiming]) -> u64 {
    timeline.iter().map(|s| s.start_us.saturating_add(s.duration_us)).max().unwrap_or(0)
}

/// Records each pod's start timeline once, from the record RunPodSandbox amends after its Ready
/// save (the one that holds every step, `state_ready` included): what the histograms show is
/// what PodSandboxStatus shows.
pub struct PodStateTimeline {
    inner: Arc<dyn StateStore<PodRecord>>,
    metrics: Arc<Metrics>,
    /// Pods whose record was saved Creating and not yet amended Ready: only those are new
    /// starts (a Ready record written again, by recovery say, is no start).
    creating: Mutex<HashSet<String>>,
}

impl PodStateTimeline {
    pub fn new(inner: Arc<dyn StateStore<PodRecord>>, metrics: Arc<Metrics>) -> Self {
        PodStateTimeline { inner, metrics, creating: Mutex::default() }
    }

    fn note(&self, record: &PodRecord) {
        match record.state {
            PodState::Creating => {
                lock(&self.creating).insert(record.id.clone());
            }
            PodState::Ready => {}
            PodState::Stopped => {
                lock(&self.creating).remove(&record.id);
            }
        }
    }
}

impl StateStore<PodRecord> for PodStateTimeline {
    /// Intermediate states (Creating) are saved this way: keep them off the disk flush path.
    fn save_volatile(&self, record: &PodRecord) -> Result<()> {
        self.inner.save_volatile(record)?;
        self.note(record);
        Ok(())
    }

    fn save(&self, record: &PodRecord) -> Result<()> {
        self.inner.save(record)?;
        self.note(record);
        Ok(())
    }

    fn amend(&self, record: &PodRecord) -> Result<()> {
        let out = self.inner.amend(record);
        // Observed even when the amendment could not be written: the pod did start so.
        if record.state == PodState::Ready && lock(&self.creating).remove(&record.id) {
            for step in &record.timeline {
                self.metrics.pod_start_step(&step.step, step.duration_us);
            }
            self.metrics.pod_started(end_us(&record.timeline));
        }
        out
    }

    fn load_all(&self) -> Result<Vec<PodRecord>> {
        self.inner.load_all()
    }

    fn delete(&self, id: &str) -> Result<()> {
        lock(&self.creating).remove(id);
        self.inner.delete(id)
    }
}

/// Records each container's CreateContainer steps once, from the record amended after its
/// Created save, and its StartContainer steps once, from the record amended after its Running
/// save: both into one histogram, by call.
pub struct ContainerStateTimeline {
    inner: Arc<dyn StateStore<ContainerRecord>>,
    metrics: Arc<Metrics>,
    /// Containers saved Creating and not yet amended Created.
    creating: Mutex<HashSet<String>>,
    /// Created containers not yet started, with how many steps their timeline had then (the
    /// ones after are StartContainer's). Loaded records count too: a container created before a
    /// restart is started after it.
    created: Mutex<HashMap<String, usize>>,
}

impl ContainerStateTimeline {
    pub fn new(inner: Arc<dyn StateStore<ContainerRecord>>, metrics: Arc<Metrics>) -> Self {
        ContainerStateTimeline { inner, metrics, creating: Mutex::default(), created: Mutex::default() }
    }

    fn note(&self, record: &ContainerRecord) {
        if record.state == ContainerState::Creating {
            lock(&self.creating).insert(record.id.clone());
        }
    }
}

impl StateStore<ContainerRecord> for ContainerStateTimeline {
    fn save_volatile(&self, record: &ContainerRecord) -> Result<()> {
        self.inner.save_volatile(record)?;
        self.note(record);
        Ok(())
    }

    fn save(&self, record: &ContainerRecord) -> Result<()> {
        self.inner.save(record)?;
        self.note(record);
        Ok(())
    }

    fn save_unflushed(&self, record: &ContainerRecord) -> Result<()> {
        self.inner.save_unflushed(record)?;
        self.note(record);
        Ok(())
    }

    fn amend(&self, record: &ContainerRecord) -> Result<()> {
        let out = self.inner.amend(record);
        match record.state {
            ContainerState::Created => {
                if lock(&self.creating).remove(&record.id) {
                    for step in &record.timeline {
                        self.metrics.container_step("create", &step.step, step.duration_us);
                    }
                    self.metrics.container_created(end_us(&record.timeline));
                    lock(&self.created).insert(record.id.clone(), record.timeline.len());
                }
            }
            // Exited: the process may have exited before StartContainer recorded it running.
            ContainerState::Running | ContainerState::Exited => {
                if let Some(created_steps) = lock(&self.created).remove(&record.id) {
                    for step in record.timeline.iter().skip(created_steps) {
                        self.metrics.container_step("start", &step.step, step.duration_us);
                    }
                }
            }
            ContainerState::Creating => {}
        }
        out
    }

    fn load_all(&self) -> Result<Vec<ContainerRecord>> {
        let records = self.inner.load_all()?;
        let mut created = lock(&self.created);
        for r in records.iter().filter(|r| r.state == ContainerState::Created) {
            created.insert(r.id.clone(), r.timeline.len());
        }
        Ok(records)
    }

    fn delete(&self, id: &str) -> Result<()> {
        lock(&self.creating).remove(id);
        lock(&self.created).remove(id);
        self.inner.delete(id)
    }
}

/// Counts the pods whose monitor died under them (the sandbox service's observer).
pub struct PodMonitorExits {
    metrics: Arc<Metrics>,
}

impl PodMonitorExits {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        PodMonitorExits { metrics }
    }
}

impl PodObserver for PodMonitorExits {
    fn pod_monitor_exited(&self, _pod_id: &str) {
        self.metrics.pod_monitor_exited();
    }
}

pub struct TimedNetwork {
    inner: Arc<dyn PodNetwork>,
    metrics: Arc<Metrics>,
}

impl TimedNetwork {
    pub fn new(inner: Arc<dyn PodNetwork>, metrics: Arc<Metrics>) -> Self {
        TimedNetwork { inner, metrics }
    }
}

impl PodNetwork for TimedNetwork {
    fn setup(&self, request: &NetworkRequest) -> Result<NetworkStatus> {
        let (out, took) = timed(|| self.inner.setup(request));
        self.metrics.cni_operation("setup", took, out.is_ok());
        out
    }
    fn check(&self, request: &NetworkRequest) -> Result<()> {
        let (out, took) = timed(|| self.inner.check(request));
        self.metrics.cni_operation("check", took, out.is_ok());
        out
    }
    fn teardown(&self, request: &NetworkRequest) -> Result<()> {
        let (out, took) = timed(|| self.inner.teardown(request));
        self.metrics.cni_operation("teardown", took, out.is_ok());
        out
    }
    fn teardown_unknown(&self, known: &[String]) -> Result<Vec<String>> {
        // Once at start: its DELs are not pod operations worth a histogram.
        self.inner.teardown_unknown(known)
    }
    fn status(&self) -> NetworkReadiness {
        self.inner.status()
    }
}

pub struct TimedHostPorts {
    inner: Arc<dyn HostPorts>,
    metrics: Arc<Metrics>,
}

impl TimedHostPorts {
    pub fn new(inner: Arc<dyn HostPorts>, metrics: Arc<Metrics>) -> Self {
        TimedHostPorts { inner, metrics }
    }
}

impl HostPorts for TimedHostPorts {
    fn add(&self, pod_id: &str, mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<()> {
        let (out, took) = timed(|| self.inner.add(pod_id, mappings, pod_ips));
        self.metrics.hostport_operation("add", took);
        out
    }
    fn remove(&self, pod_id: &str, mappings: &[PortMapping]) -> Result<()> {
        let (out, took) = timed(|| self.inner.remove(pod_id, mappings));
        self.metrics.hostport_operation("remove", took);
        out
    }
    fn resync(&self, live: &[HostPortPod]) -> Result<HostPortResyncReport> {
        let (out, took) = timed(|| self.inner.resync(live));
        self.metrics.hostport_operation("resync", took);
        out
    }
}

pub struct TimedImages {
    inner: Arc<dyn ImageStore>,
    metrics: Arc<Metrics>,
}

impl TimedImages {
    pub fn new(inner: Arc<dyn ImageStore>, metrics: Arc<Metrics>) -> Self {
        TimedImages { inner, metrics }
    }
}

impl ImageStore for TimedImages {
    fn pull(&self, reference: &ImageRef, auth: &RegistryAuth) -> Result<ImageRecord> {
        let (out, took) = timed(|| self.inner.pull(reference, auth));
        match &out {
            Ok(image) => self.metrics.image_pulled(image.size, took),
            Err(_) => self.metrics.image_pull_failed(took),
        }
        out
    }
    fn list(&self) -> Result<Vec<ImageRecord>> {
        self.inner.list()
    }
    fn config_json(&self, id: &Digest) -> Result<Vec<u8>> {
        self.inner.config_json(id)
    }
    fn untag(&self, id: &Digest, name: &str) -> Result<()> {
        self.inner.untag(id, name)
    }
    fn remove(&self, id: &Digest) -> Result<()> {
        self.inner.remove(id)
    }
    fn usage(&self) -> Result<FsUsage> {
        self.inner.usage()
    }
    fn hold_layers(&self, holder: &str, id: &Digest) -> Result<Vec<PathBuf>> {
        self.inner.hold_layers(holder, id)
    }
    fn release_layers(&self, holder: &str) -> Result<()> {
        self.inner.release_layers(holder)
    }
    fn import_archive(&self, archive: &std::path::Path) -> Result<Vec<ImageRecord>> {
        self.inner.import_archive(archive)
    }
}

pub struct TimedContainerMonitor {
    inner: Arc<dyn ContainerMonitor>,
    metrics: Arc<Metrics>,
}

impl TimedContainerMonitor {
    pub fn new(inner: Arc<dyn ContainerMonitor>, metrics: Arc<Metrics>) -> Self {
        TimedContainerMonitor { inner, metrics }
    }
}

impl ContainerMonitor for TimedContainerMonitor {
    fn create_container(&self, pod_id: &str, launch: &ContainerLaunch) -> Result<ProcRef> {
        let (out, took) = timed(|| self.inner.create_container(pod_id, launch));
        self.metrics.runtime_operation("create", took);
        out
    }
    fn start_container(&self, pod_id: &str, container_id: &str) -> Result<()> {
        let (out, took) = timed(|| self.inner.start_container(pod_id, container_id));
        self.metrics.runtime_operation("start", took);
        out
    }
    fn reopen_log(&self, pod_id: &str, container_id: &str) -> Result<()> {
        self.inner.reopen_log(pod_id, container_id)
    }
    fn signal(&self, process: &ProcRef, signal: i32) -> Result<bool> {
        self.inner.signal(process, signal)
    }
    fn wait_exit(&self, process: &ProcRef, timeout: Duration) -> Result<bool> {
        self.inner.wait_exit(process, timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crius_core::container::model::ContainerConfig;
    use crius_core::container::{ContainerOptions, ContainerService};
    use crius_core::image::ImageConfigInfo;
    use crius_core::ports::container::RuntimeHandler;
    use crius_core::ports::fake::Fakes;
    use crius_core::ports::fake_container::ContainerFakes;
    use crius_core::sandbox::model::{POD_RECORD_VERSION, PodConfig, PodMetadata, PodResources};
    use crius_core::sandbox::{SandboxOptions, SandboxService};

    use super::*;

    /// The value of one sample of the exposition (0 when absent).
    fn sample(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = metrics.encode().unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(key, _)| {
                let (n, rest) = key.split_once('{').unwrap_or((key, "}"));
                n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0.0)
    }

    fn pod_config(name: &str) -> PodConfig {
        PodConfig {
            metadata: PodMetadata { name: name.into(), uid: format!("uid-{name}"), namespace: "ns".into(), attempt: 0 },
            hostname: name.into(),
            ..Default::default()
        }
    }

    fn step(step: &str, start_us: u64, duration_us: u64) -> StepTiming {
        StepTiming { step: step.into(), start_us, duration_us }
    }

    fn pod_record(id: &str, state: PodState, timeline: Vec<StepTiming>) -> PodRecord {
        PodRecord {
            version: POD_RECORD_VERSION,
            id: id.into(),
            config: pod_config("p"),
            created_at_ns: 1,
            state,
            resources: PodResources::default(),
            timeline,
            network: None,
            stopping: false,
            selinux_level: None,
        }
    }

    const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

    fn app() -> ContainerConfig {
        ContainerConfig {
            metadata: crius_core::container::model::ContainerMetadata { name: "app".into(), attempt: 0 },
            image: IMAGE.into(),
            ..Default::default()
        }
    }

    /// The real services over the fakes, their state stores and container monitor wrapped as
    /// the binary wraps them.
    fn services(metrics: &Arc<Metrics>) -> (Arc<SandboxService>, Arc<ContainerService>) {
        let pods = Fakes::default();
        let mut ports = pods.ports();
        ports.pod_state = Arc::new(PodStateTimeline::new(ports.pod_state, metrics.clone()));
        let sandboxes = Arc::new(SandboxService::new(ports, SandboxOptions::default()));
        let containers = ContainerFakes::default();
        containers.add_image(IMAGE, ImageConfigInfo { cmd: vec!["sh".into()], ..Default::default() });
        let mut ports = containers.ports();
        ports.state = Arc::new(ContainerStateTimeline::new(ports.state, metrics.clone()));
        ports.monitor = Arc::new(TimedContainerMonitor::new(ports.monitor, metrics.clone()));
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
            ..Default::default()
        };
        let svc = ContainerService::new_shared(ports, sandboxes.clone(), options);
        (sandboxes, svc)
    }

    #[test]
    fn a_pod_start_observes_each_step_of_its_timeline_once_and_the_total() {
        let metrics = Arc::new(Metrics::new());
        let (sandboxes, _) = services(&metrics);
        let id = sandboxes.run(pod_config("web")).unwrap();
        let timeline = sandboxes.status(&id).unwrap().record.timeline;
        assert_eq!(timeline.last().map(|s| s.step.as_str()), Some("state_ready"));
        for s in &timeline {
            let labels = [("step", s.step.as_str())];
            assert_eq!(sample(&metrics, "crius_pod_start_step_duration_seconds_count", &labels), 1.0, "{}", s.step);
            let sum = sample(&metrics, "crius_pod_start_step_duration_seconds_sum", &labels);
            assert!((sum - s.duration_us as f64 / 1e6).abs() < 1e-9, "{}: {sum}", s.step);
        }
        assert_eq!(sample(&metrics, "crius_pod_start_duration_seconds_count", &[]), 1.0);
        let total = sample(&metrics, "crius_pod_start_duration_seconds_sum", &[]);
        assert!((total - end_us(&timeline) as f64 / 1e6).abs() < 1e-9, "{total}");
        // A stop (a Ready record saved again) is no start.
        sandboxes.stop(&id).unwrap();
        assert_eq!(sample(&metrics, "crius_pod_start_duration_seconds_count", &[]), 1.0);
    }

    #[test]
    fn only_a_pod_seen_creating_counts_as_a_start_and_only_once() {
        let metrics = Arc::new(Metrics::new());
        let store = PodStateTimeline::new(Arc::new(Fakes::default()), metrics.clone());
        let timeline = vec![step("reserve", 0, 10), step("state_ready", 10, 20)];
        let count = || sample(&metrics, "crius_pod_start_duration_seconds_count", &[]);

        // Ready without Creating before it: a record written again (recovery, say).
        store.amend(&pod_record("old", PodState::Ready, timeline.clone())).unwrap();
        assert_eq!(count(), 0.0);

        store.save_volatile(&pod_record("new", PodState::Creating, vec![])).unwrap();
        store.save(&pod_record("new", PodState::Ready, timeline[..1].to_vec())).unwrap();
        assert_eq!(count(), 0.0, "the Ready save lacks its own step: the amendment is what counts");
        store.amend(&pod_record("new", PodState::Ready, timeline.clone())).unwrap();
        assert_eq!(count(), 1.0);
        assert_eq!(sample(&metrics, "crius_pod_start_duration_seconds_sum", &[]), 30e-6);
        assert_eq!(sample(&metrics, "crius_pod_start_step_duration_seconds_sum", &[("step", "state_ready")]), 20e-6);
        store.amend(&pod_record("new", PodState::Ready, timeline.clone())).unwrap();
        assert_eq!(count(), 1.0, "once");

        // A creation rolled back (deleted) or stopped before Ready is no start either.
        store.save_volatile(&pod_record("undone", PodState::Creating, vec![])).unwrap();
        store.delete("undone").unwrap();
        store.amend(&pod_record("undone", PodState::Ready, timeline.clone())).unwrap();
        assert_eq!(count(), 1.0);
    }

    #[test]
    fn create_and_start_feed_one_step_histogram_by_call() {
        let metrics = Arc::new(Metrics::new());
        let (sandboxes, containers) = services(&metrics);
        let pod = sandboxes.run(pod_config("web")).unwrap();
        let id = containers.create(&pod, app()).unwrap();
        let created = containers.status(&id).unwrap().record.timeline;
        let count = |call: &str, step: &str| {
            sample(&metrics, "crius_container_step_duration_seconds_count", &[("call", call), ("step", step)])
        };
        for s in &created {
            assert_eq!(count("create", &s.step), 1.0, "{}", s.step);
        }
        assert_eq!(count("create", "state_created"), 1.0);
        assert_eq!(sample(&metrics, "crius_container_create_duration_seconds_count", &[]), 1.0);
        assert_eq!(count("start", "runtime_start"), 0.0);

        containers.start(&id).unwrap();
        let started = containers.status(&id).unwrap().record.timeline;
        let start_steps: Vec<&str> = started[created.len()..].iter().map(|s| s.step.as_str()).collect();
        assert_eq!(start_steps, ["lock", "runtime_start", "state_running"]);
        for s in &started[created.len()..] {
            assert_eq!(count("start", &s.step), 1.0, "{}", s.step);
            assert_eq!(count("create", &s.step), 0.0, "{}", s.step);
        }
        // Create's steps were not observed again.
        for s in &created {
            assert_eq!(count("create", &s.step), 1.0, "{}", s.step);
        }
        let runtime =
            |op: &str| sample(&metrics, "crius_runtime_operation_duration_seconds_count", &[("operation", op)]);
        assert_eq!((runtime("create"), runtime("start")), (1.0, 1.0));
    }

    #[test]
    fn a_container_created_before_a_restart_has_its_start_steps_observed_alone() {
        let metrics = Arc::new(Metrics::new());
        let fakes = ContainerFakes::default();
        let mut record = {
            // A Created record as a previous daemon left it.
            let metrics = Arc::new(Metrics::new());
            let (sandboxes, containers) = services(&metrics);
            let pod = sandboxes.run(pod_config("web")).unwrap();
            let id = containers.create(&pod, app()).unwrap();
            containers.status(&id).unwrap().record
        };
        fakes.world().records.insert(record.id.clone(), record.clone());
        let store = ContainerStateTimeline::new(Arc::new(fakes), metrics.clone());
        assert_eq!(store.load_all().unwrap().len(), 1);
        let created_steps = record.timeline.len();
        record.state = ContainerState::Running;
        record.timeline.push(step("lock", 100, 1));
        record.timeline.push(step("runtime_start", 101, 2));
        record.timeline.push(step("state_running", 103, 3));
        store.save(&record).unwrap();
        store.amend(&record).unwrap();
        store.amend(&record).unwrap();
        let count = |call: &str, step: &str| {
            sample(&metrics, "crius_container_step_duration_seconds_count", &[("call", call), ("step", step)])
        };
        assert_eq!(count("start", "runtime_start"), 1.0);
        assert_eq!(count("start", "state_running"), 1.0);
        for s in &record.timeline[..created_steps] {
            assert_eq!(count("create", &s.step), 0.0, "{}", s.step);
            assert_eq!(count("start", &s.step), 0.0, "{}", s.step);
        }
    }

    #[test]
    fn the_pod_observer_counts_monitor_exits() {
        let metrics = Arc::new(Metrics::new());
        let fakes = Fakes::default();
        let sandboxes = SandboxService::new(fakes.ports(), SandboxOptions::default())
            .with_observer(Arc::new(PodMonitorExits::new(metrics.clone())));
        let id = sandboxes.run(pod_config("web")).unwrap();
        assert_eq!(sample(&metrics, "crius_pod_monitor_exits_total", &[]), 0.0);
        fakes.kill(sandboxes.status(&id).unwrap().record.resources.init.unwrap().pid);
        assert_eq!(sample(&metrics, "crius_pod_monitor_exits_total", &[]), 1.0);
    }
}
