//! Decorators around the domain's ports that time what passes through them: the binary wraps
//! its real adapters in these, so the domain records nothing itself.
//!
//! - [`PodStateTimeline`]: a pod's start timeline (PodRecord.timeline) when its record is
//!   first saved Ready, plus the `state_ready` step, which is that save.
//! - [`ContainerStateTimeline`]: CreateContainer from its Creating record to its Created one.
//! - [`TimedNetwork`], [`TimedHostPorts`]: CNI and hostport latency.
//! - [`TimedImages`]: image pull bytes, durations and failures.
//! - [`TimedContainerMonitor`]: runtime create and start through the monitor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crius_core::Result;
use crius_core::container::model::{ContainerRecord, ContainerState};
use crius_core::image::{Digest, FsUsage, ImageRecord, ImageRef, RegistryAuth};
use crius_core::ports::StateStore;
use crius_core::ports::container::{ContainerLaunch, ContainerMonitor};
use crius_core::ports::image::ImageStore;
use crius_core::ports::network::{
    HostPortPod, HostPortResyncReport, HostPorts, NetworkReadiness, NetworkRequest, NetworkStatus, PodNetwork,
};
use crius_core::sandbox::model::{PodRecord, PodState, PortMapping, ProcRef};

use crate::registry::Metrics;

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records each pod's start timeline once, when RunPodSandbox saves it Ready.
pub struct PodStateTimeline {
    inner: Arc<dyn StateStore<PodRecord>>,
    metrics: Arc<Metrics>,
    /// Pods whose record was saved Creating and not yet Ready: only those are new starts (a
    /// Ready record saved again, by recovery say, is no start).
    creating: Mutex<std::collections::HashSet<String>>,
}

impl PodStateTimeline {
    pub fn new(inner: Arc<dyn StateStore<PodRecord>>, metrics: Arc<Metrics>) -> Self {
        PodStateTimeline { inner, metrics, creating: Mutex::default() }
    }
}

impl StateStore<PodRecord> for PodStateTimeline {
    /// Intermediate states (Creating) are saved this way: keep them off the disk flush path.
    fn save_volatile(&self, record: &PodRecord) -> Result<()> {
        self.inner.save_volatile(record)?;
        if record.state == PodState::Creating {
            lock(&self.creating).insert(record.id.clone());
        }
        Ok(())
    }

    fn save(&self, record: &PodRecord) -> Result<()> {
        let (out, took) = timed(|| self.inner.save(record));
        out?;
        match record.state {
            PodState::Creating => {
                lock(&self.creating).insert(record.id.clone());
            }
            PodState::Ready => {
                if lock(&self.creating).remove(&record.id) {
                    let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                    let mut end_us = 0;
                    for step in &record.timeline {
                        self.metrics.pod_start_step(&step.step, step.duration_us);
                        end_us = end_us.max(step.start_us.saturating_add(step.duration_us));
                    }
                    // This save is the state_ready step, which the record cannot hold yet.
                    self.metrics.pod_start_step("state_ready", took_us);
                    self.metrics.pod_started(end_us.saturating_add(took_us));
                }
            }
            PodState::Stopped => {
                lock(&self.creating).remove(&record.id);
            }
        }
        Ok(())
    }

    fn load_all(&self) -> Result<Vec<PodRecord>> {
        self.inner.load_all()
    }

    fn delete(&self, id: &str) -> Result<()> {
        lock(&self.creating).remove(id);
        self.inner.delete(id)
    }
}

/// Times CreateContainer from its first (Creating) save to its Created one.
pub struct ContainerStateTimeline {
    inner: Arc<dyn StateStore<ContainerRecord>>,
    metrics: Arc<Metrics>,
    creating: Mutex<HashMap<String, Instant>>,
}

impl ContainerStateTimeline {
    pub fn new(inner: Arc<dyn StateStore<ContainerRecord>>, metrics: Arc<Metrics>) -> Self {
        ContainerStateTimeline { inner, metrics, creating: Mutex::default() }
    }
}

impl StateStore<ContainerRecord> for ContainerStateTimeline {
    fn save_volatile(&self, record: &ContainerRecord) -> Result<()> {
        self.inner.save_volatile(record)?;
        if record.state == ContainerState::Creating {
            lock(&self.creating).entry(record.id.clone()).or_insert_with(Instant::now);
        }
        Ok(())
    }

    fn save(&self, record: &ContainerRecord) -> Result<()> {
        let (out, took) = timed(|| self.inner.save(record));
        out?;
        match record.state {
            ContainerState::Creating => {
                lock(&self.creating).entry(record.id.clone()).or_insert_with(Instant::now);
            }
            _ => {
                if let Some(since) = lock(&self.creating).remove(&record.id)
                    && record.state == ContainerState::Created
                {
                    for step in &record.timeline {
                        self.metrics.container_create_step(&step.step, step.duration_us);
                    }
                    // This save is the state_created step, which the record cannot hold yet.
                    self.metrics
                        .container_create_step("state_created", u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                    self.metrics.container_created(since.elapsed());
                }
            }
        }
        Ok(())
    }

    fn load_all(&self) -> Result<Vec<ContainerRecord>> {
        self.inner.load_all()
    }

    fn delete(&self, id: &str) -> Result<()> {
        lock(&self.creating).remove(id);
        self.inner.delete(id)
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
