//! The CRI RuntimeService.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crius_core::container::{ContainerEvent, ContainerFilter, ContainerService};
use crius_core::sandbox::SandboxService;
use crius_core::stats::StatsService;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::convert::container as cconv;
use crate::convert::container_view as cview;
use crate::convert::sandbox as conv;
use crate::convert::stats as sconv;
use crate::status::to_status;

pub const RUNTIME_NAME: &str = "crius";
pub const CRI_API_VERSION: &str = "v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

/// Facts about the running daemon that Version, Status and RuntimeConfig report.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub version: String,
    pub cgroup_driver: CgroupDriver,
    pub runtime_handlers: Vec<String>,
    /// The effective configuration, as JSON, for Status verbose info.
    pub config_json: String,
}

pub struct CriRuntimeService {
    sandboxes: Arc<SandboxService>,
    containers: Arc<ContainerService>,
    stats: Arc<StatsService>,
    info: RuntimeInfo,
    pod_cidr: Mutex<String>,
    streams: Arc<crius_stream::StreamServer>,
    readiness: crate::Readiness,
}

impl CriRuntimeService {
    pub fn new(
        containers: Arc<ContainerService>,
        stats: Arc<StatsService>,
        streams: Arc<crius_stream::StreamServer>,
        info: RuntimeInfo,
    ) -> Self {
        let sandboxes = containers.sandboxes().clone();
        CriRuntimeService {
            sandboxes,
            containers,
            stats,
            streams,
            info,
            pod_cidr: Mutex::new(String::new()),
            readiness: crate::Readiness::default(),
        }
    }

    /// Shares the daemon's lifecycle (event streams end when it stops).
    pub fn with_readiness(mut self, readiness: crate::Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The full id of a running container, for a streaming session.
    /// The container's record (full id, config), if it is running.
    fn running_container(&self, id: String) -> Result<crius_core::container::model::ContainerRecord, Status> {
        let id = require(id, "container_id")?;
        let view = self.containers.status(&id).map_err(to_status)?;
        if view.state() != crius_core::container::model::ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running: streaming needs a running container",
                view.record.id
            )));
        }
        Ok(view.record)
    }

    /// The statuses of a pod's containers, for PodSandboxStatus and events.
    fn pod_container_statuses(&self, pod_id: &str) -> Vec<cri::ContainerStatus> {
        let filter = ContainerFilter { pod_id: Some(pod_id.to_string()), ..Default::default() };
        self.containers.list(&filter).iter().map(cview::container_status).collect()
    }

    fn network_condition(&self) -> cri::RuntimeCondition {
        let readiness = self.sandboxes.network_readiness();
        cri::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: readiness.ready,
            reason: readiness.reason,
            message: readiness.message,
        }
    }
}

pub(crate) fn not_yet<T>(rpc: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!("{rpc} is not implemented by this version of crius")))
}

/// Runs a domain call on a blocking thread: it completes (or rolls back) even if the client
/// goes away and this future is dropped.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crius_core::Result<T> + Send + 'static,
) -> Result<T, Status> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| Status::internal(format!("crius worker failed: {e}")))?
        .map_err(to_status)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuntimeService for CriRuntimeService {
    type GetContainerEventsStream = EventStream;

    async fn version(&self, _request: Request<cri::VersionRequest>) -> Result<Response<cri::VersionResponse>, Status> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: self.info.version.clone(),
            runtime_api_version: CRI_API_VERSION.into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let request = request.into_inner();
        let config = conv::pod_config(request.config, request.runtime_handler).map_err(to_status)?;
        let span =
            tracing::info_span!("RunPodSandbox", pod = %config.metadata.sandbox_name(), pod_id = tracing::field::Empty);
        let sandboxes = self.sandboxes.clone();
        let pod_sandbox_id = blocking(move || sandboxes.run(config)).instrument(span).await?;
        Ok(Response::new(cri::RunPodSandboxResponse { pod_sandbox_id }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        let id = require_id(request.into_inner().pod_sandbox_id)?;
        let span = tracing::info_span!("StopPodSandbox", pod_id = %id);
        let sandboxes = self.sandboxes.clone();
        blocking(move || sandboxes.stop(&id)).instrument(span).await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        let id = require_id(request.into_inner().pod_sandbox_id)?;
        let span = tracing::info_span!("RemovePodSandbox", pod_id = %id);
        let sandboxes = self.sandboxes.clone();
        blocking(move || sandboxes.remove(&id)).instrument(span).await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let request = request.into_inner();
        let id = require_id(request.pod_sandbox_id)?;
        let view = self.sandboxes.status(&id).map_err(to_status)?;
        let mut info = std::collections::HashMap::new();
        if request.verbose {
            info.insert("info".to_string(), view.verbose_info());
        }
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(conv::pod_sandbox_status(&view)),
            info,
            containers_statuses: if request.verbose {
                self.pod_container_statuses(&view.record.id)
            } else {
                Vec::new()
            },
            timestamp: now_ns(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        let filter = conv::pod_filter(request.into_inner().filter);
        let items = self.sandboxes.list(&filter).map_err(to_status)?.iter().map(conv::pod_sandbox).collect();
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn update_runtime_config(
        &self,
        request: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        let cidr = request.into_inner().runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr);
        if let Some(cidr) = cidr.filter(|c| !c.is_empty()) {
            tracing::info!(pod_cidr = %cidr, "pod CIDR updated");
            *self.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()) = cidr;
        }
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, request: Request<cri::StatusRequest>) -> Result<Response<cri::StatusResponse>, Status> {
        let runtime = cri::RuntimeCondition { r#type: "RuntimeReady".into(), status: true, ..Default::default() };
        let mut info = std::collections::HashMap::new();
        if request.into_inner().verbose {
            let pod_cidr = self.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let verbose = serde_json::json!({
                "version": self.info.version,
                "podCIDR": pod_cidr,
                "pods": self.sandboxes.pods().len(),
                "config": serde_json::from_str::<serde_json::Value>(&self.info.config_json).unwrap_or_default(),
            });
            info.insert("info".to_string(), verbose.to_string());
        }
        let runtime_handlers = self
            .info
            .runtime_handlers
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                let handler = |name: &str| cri::RuntimeHandler {
                    name: name.to_string(),
                    features: Some(cri::RuntimeHandlerFeatures::default()),
                };
                // The default handler is also listed under the empty name, as the kubelet expects.
                if i == 0 { vec![handler(""), handler(name)] } else { vec![handler(name)] }
            })
            .collect();
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus { conditions: vec![runtime, self.network_condition()] }),
            info,
            runtime_handlers,
            features: Some(cri::RuntimeFeatures::default()),
        }))
    }

    async fn runtime_config(
        &self,
        _request: Request<cri::RuntimeConfigRequest>,
    ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        let cgroup_driver = match self.info.cgroup_driver {
            CgroupDriver::Cgroupfs => cri::CgroupDriver::Cgroupfs,
            CgroupDriver::Systemd => cri::CgroupDriver::Systemd,
        };
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration { cgroup_driver: cgroup_driver as i32 }),
        }))
    }

    async fn create_container(
        &self,
        request: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        let request = request.into_inner();
        let pod_id = require(request.pod_sandbox_id, "pod_sandbox_id")?;
        let config = cconv::container_config(request.config).map_err(to_status)?;
        let span = tracing::info_span!("CreateContainer", pod_id = %pod_id, container = %config.metadata.name, image = %config.image);
        let containers = self.containers.clone();
        let container_id = blocking(move || containers.create(&pod_id, config)).instrument(span).await?;
        Ok(Response::new(cri::CreateContainerResponse { container_id }))
    }

    async fn start_container(
        &self,
        request: Request<cri::StartContainerRequest>,
    ) -> Result<Response<cri::StartContainerResponse>, Status> {
        let id = require(request.into_inner().container_id, "container_id")?;
        let span = tracing::info_span!("StartContainer", container_id = %id);
        let containers = self.containers.clone();
        blocking(move || containers.start(&id)).instrument(span).await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<cri::StopContainerRequest>,
    ) -> Result<Response<cri::StopContainerResponse>, Status> {
        let request = request.into_inner();
        let id = require(request.container_id, "container_id")?;
        let span = tracing::info_span!("StopContainer", container_id = %id, timeout = request.timeout);
        let containers = self.containers.clone();
        blocking(move || containers.stop(&id, request.timeout)).instrument(span).await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<cri::RemoveContainerRequest>,
    ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        let id = require(request.into_inner().container_id, "container_id")?;
        let span = tracing::info_span!("RemoveContainer", container_id = %id);
        let containers = self.containers.clone();
        blocking(move || containers.remove(&id)).instrument(span).await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        let filter = cview::container_filter(request.into_inner().filter);
        let containers = self.containers.list(&filter).iter().map(cview::container).collect();
        Ok(Response::new(cri::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        let request = request.into_inner();
        let id = require(request.container_id, "container_id")?;
        let view = self.containers.status(&id).map_err(to_status)?;
        let mut info = std::collections::HashMap::new();
        if request.verbose {
            // Verbose reads the bundle's spec from disk: off the async workers.
            let (containers, v) = (self.containers.clone(), view.clone());
            info.insert("info".to_string(), blocking(move || Ok(containers.verbose_info(&v))).await?);
        }
        Ok(Response::new(cri::ContainerStatusResponse { status: Some(cview::container_status(&view)), info }))
    }

    async fn update_container_resources(
        &self,
        request: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        let request = request.into_inner();
        let id = require(request.container_id, "container_id")?;
        let resources = request
            .linux
            .map(|r| cconv::resources(&r))
            .ok_or_else(|| Status::invalid_argument("UpdateContainerResources: linux resources are required"))?;
        let span = tracing::info_span!("UpdateContainerResources", container_id = %id);
        let containers = self.containers.clone();
        blocking(move || containers.update_resources(&id, resources)).instrument(span).await?;
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        request: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        let id = require(request.into_inner().container_id, "container_id")?;
        let containers = self.containers.clone();
        blocking(move || containers.reopen_log(&id)).await?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        request: Request<cri::ExecSyncRequest>,
    ) -> Result<Response<cri::ExecSyncResponse>, Status> {
        let request = request.into_inner();
        let id = require(request.container_id, "container_id")?;
        let span = tracing::info_span!("ExecSync", container_id = %id);
        let containers = self.containers.clone();
        let cmd = request.cmd;
        let timeout = request.timeout;
        let out = blocking(move || containers.exec_sync(&id, &cmd, timeout)).instrument(span).await?;
        if out.timed_out {
            return Err(Status::deadline_exceeded(format!(
                "ExecSync: the command timed out after {timeout} s and was killed"
            )));
        }
        Ok(Response::new(cri::ExecSyncResponse { stdout: out.stdout, stderr: out.stderr, exit_code: out.exit_code }))
    }

    async fn exec(&self, request: Request<cri::ExecRequest>) -> Result<Response<cri::ExecResponse>, Status> {
        let r = request.into_inner();
        let container_id = self.running_container(r.container_id)?.id;
        let url = self
            .streams
            .get_exec(crius_stream::ExecRequest {
                container_id,
                cmd: r.cmd,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(stream_status)?;
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(&self, request: Request<cri::AttachRequest>) -> Result<Response<cri::AttachResponse>, Status> {
        let r = request.into_inner();
        let record = self.running_container(r.container_id)?;
        let (container_id, config) = (record.id, record.config);
        if r.stdin && !config.stdin {
            return Err(Status::failed_precondition(format!(
                "Attach: container {container_id} was not created with stdin open (stdin: true in its config), \
                 so there is no stdin to attach to"
            )));
        }
        if r.tty && r.stderr {
            return Err(Status::invalid_argument("Attach: tty and stderr cannot both be true"));
        }
        let url = self
            .streams
            .get_attach(crius_stream::AttachRequest {
                container_id,
                // The container's own: its output is a terminal or it is not, whatever is asked;
                // a terminal has no stderr of its own (it is merged into stdout).
                tty: config.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr && !config.tty,
            })
            .map_err(stream_status)?;
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        request: Request<cri::PortForwardRequest>,
    ) -> Result<Response<cri::PortForwardResponse>, Status> {
        let r = request.into_inner();
        let id = require_id(r.pod_sandbox_id)?;
        let view = self.sandboxes.status(&id).map_err(to_status)?;
        if !view.ready {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not ready: nothing to forward to",
                view.record.id
            )));
        }
        let ports = crius_stream::PortForwardRequest::ports_from_cri(&r.port).map_err(stream_status)?;
        let netns = view.record.resources.namespaces.net.clone().map(std::path::PathBuf::from);
        let url = self
            .streams
            .get_port_forward(crius_stream::PortForwardRequest { pod_sandbox_id: view.record.id, netns, ports })
            .map_err(stream_status)?;
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    // The stats calls read cgroup files (and a pod's netns on a thread of its own): on a
    // blocking thread, so the async workers keep serving.
    async fn container_stats(
        &self,
        request: Request<cri::ContainerStatsRequest>,
    ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        let id = require(request.into_inner().container_id, "container_id")?;
        let stats = self.stats.clone();
        let s = blocking(move || stats.container_stats(&id)).await?;
        Ok(Response::new(cri::ContainerStatsResponse { stats: Some(sconv::container_stats(&s)) }))
    }

    async fn list_container_stats(
        &self,
        request: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        let filter = sconv::container_filter(request.into_inner().filter);
        let stats = self.stats.clone();
        let list = blocking(move || Ok(stats.list_container_stats(&filter))).await?;
        Ok(Response::new(cri::ListContainerStatsResponse { stats: list.iter().map(sconv::container_stats).collect() }))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<cri::PodSandboxStatsRequest>,
    ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        let id = require_id(request.into_inner().pod_sandbox_id)?;
        let stats = self.stats.clone();
        let s = blocking(move || stats.pod_stats(&id)).await?;
        Ok(Response::new(cri::PodSandboxStatsResponse { stats: Some(sconv::pod_stats(&s)) }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        let filter = sconv::pod_filter(request.into_inner().filter);
        let stats = self.stats.clone();
        let list = blocking(move || stats.list_pod_stats(&filter)).await?;
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats: list.iter().map(sconv::pod_stats).collect() }))
    }

    async fn checkpoint_container(
        &self,
        _request: Request<cri::CheckpointContainerRequest>,
    ) -> Result<Response<cri::CheckpointContainerResponse>, Status> {
        not_yet("CheckpointContainer")
    }

    async fn get_container_events(
        &self,
        request: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        let _ = request;
        let mut events = self.containers.subscribe_events();
        let containers = self.containers.clone();
        let mut stopping = self.readiness.stopping();
        let stream = event_stream(move |tx| async move {
            loop {
                let received = tokio::select! {
                    received = events.recv() => received,
                    _ = stopping.wait_for(|stop| *stop) => return,
                };
                match received {
                    Ok(ev) => {
                        if tx.send(Ok(event_response(&containers, &ev))).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "an events subscriber fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn list_metric_descriptors(
        &self,
        _request: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Result<Response<cri::ListMetricDescriptorsResponse>, Status> {
        let descriptors = crius_core::stats::metrics::descriptors().iter().map(sconv::descriptor).collect();
        Ok(Response::new(cri::ListMetricDescriptorsResponse { descriptors }))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _request: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<cri::ListPodSandboxMetricsResponse>, Status> {
        let stats = self.stats.clone();
        let pods = blocking(move || stats.pod_metrics()).await?;
        Ok(Response::new(cri::ListPodSandboxMetricsResponse {
            pod_metrics: pods.iter().map(sconv::pod_metrics).collect(),
        }))
    }
}

fn stream_status(e: crius_stream::RequestError) -> Status {
    match e {
        crius_stream::RequestError::Invalid(m) => Status::invalid_argument(m),
        e @ crius_stream::RequestError::TooManyInFlight(_) => Status::resource_exhausted(e.to_string()),
    }
}

fn require_id(id: String) -> Result<String, Status> {
    require(id, "pod_sandbox_id")
}

fn require(id: String, field: &str) -> Result<String, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument(format!("{field} must not be empty")));
    }
    Ok(id)
}

/// An event with the pod's status (as PodSandboxStatus gives it) and its containers' statuses.
fn event_response(containers: &ContainerService, ev: &ContainerEvent) -> cri::ContainerEventResponse {
    // A pod's own event carries the pod as it was (a deleted one is gone); a container's looks it up.
    let pod = match &ev.pod {
        Some(view) => Some(conv::pod_sandbox_status(view)),
        None => containers.sandboxes().status(&ev.pod_id).ok().map(|v| conv::pod_sandbox_status(&v)),
    };
    let filter = ContainerFilter { pod_id: Some(ev.pod_id.clone()), ..Default::default() };
    let statuses = containers.list(&filter).iter().map(cview::container_status).collect();
    cview::event(ev, pod, statuses)
}

/// A stream fed by a task: the task ends when the client goes away.
fn event_stream<F, Fut>(task: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<cri::ContainerEventResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(task(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
