//! The metric families and the registry they are encoded from.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::MetricsError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RpcLabels {
    pub service: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RpcCodeLabels {
    pub service: String,
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallStepLabels {
    call: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms to ~16 s: RPCs, runtime calls, CNI, the steps of a pod's start.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 100 ms to ~27 min: image pulls.
fn long() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

/// How many pods and containers are in each state, counted when scraped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// (state, count): "ready", "not_ready", ...
    pub pods: Vec<(&'static str, i64)>,
    /// (state, count): "created", "running", "exited", ...
    pub containers: Vec<(&'static str, i64)>,
}

type CountsFn = Box<dyn Fn() -> ObjectCounts + Send + Sync>;

/// Every metric crius exports. Shared (`Arc`) between the gRPC layer, the port decorators and
/// the endpoint; recording is lock-free apart from the label-set lookup.
pub struct Metrics {
    registry: Registry,
    pub(crate) rpc_requests: Family<RpcLabels, Counter>,
    pub(crate) rpc_errors: Family<RpcCodeLabels, Counter>,
    pub(crate) rpc_latency: Histograms<RpcLabels>,
    image_pull_bytes: Counter,
    image_pull_failures: Counter,
    image_pull_duration: Histogram,
    pods: Family<StateLabels, Gauge>,
    containers: Family<StateLabels, Gauge>,
    pod_monitor_exits: Counter,
    cni_latency: Histograms<OperationLabels>,
    cni_errors: Family<OperationLabels, Counter>,
    hostport_latency: Histograms<OperationLabels>,
    runtime_latency: Histograms<OperationLabels>,
    pod_start_steps: Histograms<StepLabels>,
    pod_start: Histogram,
    container_steps: Histograms<CallStepLabels>,
    container_create: Histogram,
    counts: Mutex<Option<CountsFn>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            rpc_requests: Family::default(),
            rpc_errors: Family::default(),
            rpc_latency: Family::new_with_constructor(latency),
            image_pull_bytes: Counter::default(),
            image_pull_failures: Counter::default(),
            image_pull_duration: long(),
            pods: Family::default(),
            containers: Family::default(),
            pod_monitor_exits: Counter::default(),
            cni_latency: Family::new_with_constructor(latency),
            cni_errors: Family::default(),
            hostport_latency: Family::new_with_constructor(latency),
            runtime_latency: Family::new_with_constructor(latency),
            pod_start_steps: Family::new_with_constructor(latency),
            pod_start: latency(),
            container_steps: Family::new_with_constructor(latency),
            container_create: latency(),
            counts: Mutex::new(None),
            registry: Registry::default(),
        };
        // Counters get "_total" appended by the encoder.
        let r = &mut registry;
        r.register("crius_grpc_requests", "CRI calls received, by service and method", m.rpc_requests.clone());
        r.register("crius_grpc_errors", "CRI calls that failed, by gRPC code", m.rpc_errors.clone());
        r.register(
            "crius_grpc_request_duration_seconds",
            "Time to answer a CRI call (to the response headers for a stream)",
            m.rpc_latency.clone(),
        );
        r.register(
            "crius_image_pull_bytes",
            "Bytes of images pulled (their unpacked size)",
            m.image_pull_bytes.clone(),
        );
        r.register("crius_image_pull_failures", "Image pulls that failed", m.image_pull_failures.clone());
        r.register("crius_image_pull_duration_seconds", "Time an image pull took", m.image_pull_duration.clone());
        r.register("crius_pods", "Pod sandboxes by state", m.pods.clone());
        r.register("crius_containers", "Containers by state", m.containers.clone());
        r.register(
            "crius_pod_monitor_exits",
            "Ready pods whose monitor (and with it the pod init) exited without a StopPodSandbox, seen while crius ran",
            m.pod_monitor_exits.clone(),
        );
        r.register("crius_cni_operation_duration_seconds", "CNI calls by operation", m.cni_latency.clone());
        r.register("crius_cni_operation_errors", "CNI calls that failed, by operation", m.cni_errors.clone());
        r.register(
            "crius_hostport_operation_duration_seconds",
            "Hostport manager calls by operation",
            m.hostport_latency.clone(),
        );
        r.register(
            "crius_runtime_operation_duration_seconds",
            "OCI runtime calls made through the pod monitor, by operation",
            m.runtime_latency.clone(),
        );
        r.register("crius_pod_start_step_duration_seconds", "Each step of RunPodSandbox", m.pod_start_steps.clone());
        r.register(
            "crius_pod_start_duration_seconds",
            "RunPodSandbox from its first step to Ready",
            m.pod_start.clone(),
        );
        r.register(
            "crius_container_step_duration_seconds",
            "Each step of CreateContainer and StartContainer, by call (create, start)",
            m.container_steps.clone(),
        );
        r.register(
            "crius_container_create_duration_seconds",
            "CreateContainer from its first step to Created",
            m.container_create.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets what counts pods and containers by state when the endpoint is scraped.
    pub fn set_object_counts(&self, f: impl Fn() -> ObjectCounts + Send + Sync + 'static) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, MetricsError> {
        if let Some(f) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let counts = f();
            for (state, n) in counts.pods {
                self.pods.get_or_create(&StateLabels { state: state.to_string() }).set(n);
            }
            for (state, n) in counts.containers {
                self.containers.get_or_create(&StateLabels { state: state.to_string() }).set(n);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).map_err(MetricsError::Encode)?;
        Ok(out)
    }

    pub(crate) fn rpc_done(&self, service: &str, method: &str, code: i32, took: Duration) {
        let labels = RpcLabels { service: service.to_string(), method: method.to_string() };
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_latency.get_or_create(&labels).observe(took.as_secs_f64());
        if code != 0 {
            let labels = RpcCodeLabels { service: labels.service, method: labels.method, code: crate::code_name(code) };
            self.rpc_errors.get_or_create(&labels).inc();
        }
    }

    pub fn image_pulled(&self, bytes: u64, took: Duration) {
        self.image_pull_bytes.inc_by(bytes);
        self.image_pull_duration.observe(took.as_secs_f64());
    }

    pub fn image_pull_failed(&self, took: Duration) {
        self.image_pull_failures.inc();
        self.image_pull_duration.observe(took.as_secs_f64());
    }

    /// A ready pod's monitor died without a Stop asking for it.
    pub fn pod_monitor_exited(&self) {
        self.pod_monitor_exits.inc();
    }

    pub fn cni_operation(&self, operation: &str, took: Duration, ok: bool) {
        let labels = OperationLabels { operation: operation.to_string() };
        self.cni_latency.get_or_create(&labels).observe(took.as_secs_f64());
        if !ok {
            self.cni_errors.get_or_create(&labels).inc();
        }
    }

    pub fn hostport_operation(&self, operation: &str, took: Duration) {
        let labels = OperationLabels { operation: operation.to_string() };
        self.hostport_latency.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn runtime_operation(&self, operation: &str, took: Duration) {
        let labels = OperationLabels { operation: operation.to_string() };
        self.runtime_latency.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn pod_start_step(&self, step: &str, took_us: u64) {
        self.pod_start_steps.get_or_create(&StepLabels { step: step.to_string() }).observe(micros(took_us));
    }

    pub fn pod_started(&self, took_us: u64) {
        self.pod_start.observe(micros(took_us));
    }

    /// One step of `call` ("create", "start") of a container.
    pub fn container_step(&self, call: &str, step: &str, took_us: u64) {
        let labels = CallStepLabels { call: call.to_string(), step: step.to_string() };
        self.container_steps.get_or_create(&labels).observe(micros(took_us));
    }

    pub fn container_created(&self, took_us: u64) {
        self.container_create.observe(micros(took_us));
    }
}

fn micros(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_moves() {
        let m = Metrics::new();
        m.set_object_counts(|| ObjectCounts { pods: vec![("ready", 2)], containers: vec![("running", 3)] });
        m.rpc_done("runtime.v1.RuntimeService", "ListContainers", 0, Duration::from_millis(2));
        m.rpc_done("runtime.v1.RuntimeService", "ListContainers", 5, Duration::from_millis(2));
        m.pod_start_step("network_setup", 1500);
        m.image_pulled(1024, Duration::from_secs(1));
        let text = m.encode().unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in [
            r#"crius_grpc_requests_total{service="runtime.v1.RuntimeService",method="ListContainers"} 2"#,
            r#"crius_grpc_errors_total{service="runtime.v1.RuntimeService",method="ListContainers",code="NotFound"} 1"#,
            r#"crius_pods{state="ready"} 2"#,
            r#"crius_containers{state="running"} 3"#,
            r#"crius_pod_start_step_duration_seconds_count{step="network_setup"} 1"#,
            "crius_image_pull_bytes_total 1024",
            "# TYPE crius_grpc_request_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        // 1.5 ms falls in the 2 ms bucket, not in the 1 ms one.
        assert!(
            text.contains(r#"crius_pod_start_step_duration_seconds_bucket{le="0.001",step="network_setup"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"crius_pod_start_step_duration_seconds_bucket{le="0.002",step="network_setup"} 1"#),
            "{text}"
        );
    }
}
