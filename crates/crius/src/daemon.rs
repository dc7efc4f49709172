//! `crius daemon`: the CRI server on its unix socket, wired to the real adapters.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use crius_core::container::{ContainerOptions, ContainerService};
use crius_core::image::ImageService;
use crius_core::ports::Ports;
use crius_core::ports::container::ContainerPorts;
use crius_core::sandbox::{SandboxOptions, SandboxService};
use crius_core::stats::{StatsOptions, StatsService};
use crius_metrics::Metrics;
use crius_metrics::instrument as timed;
use crius_server::{CgroupDriver, Readiness, RuntimeInfo};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::adapters::container_fs::HostContainerFs;
use crate::adapters::pod_files::HostPodFiles;
use crate::adapters::state_store::FileStateStore;
use crate::config::{CgroupDriverName, Config};

/// Fault injection for the crash tests: the daemon kills itself (SIGKILL, like `kill -9`) right
/// before the named step of RunPodSandbox.
const CRASH_AT_ENV: &str = "CRIUS_CRASH_AT";

pub fn run(config: Config) -> anyhow::Result<()> {
    // Before the runtime's threads exist (crius_sys::malloc says why).
    crius_sys::malloc::limit_arenas(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("crius")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    for dir in [&config.root, &config.state] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _lock = crate::lock::lock_state_dir(&config.state)?;
    if config.cgroup_driver == CgroupDriverName::Systemd && !crius_sys::cgroups::systemd_running() {
        anyhow::bail!(
            "cgroup_driver = \"systemd\", but systemd is not running on this host (no /run/systemd/system): \
             set cgroup_driver = \"cgroupfs\" (and the kubelet's cgroupDriver to match)"
        );
    }
    let listener = bind_socket(&config.listen)?;

    let metrics = Arc::new(Metrics::new());
    let monitor = Arc::new(monitor_port(&config)?);
    let host = crate::host_caps::detect(&config.cgroup_root, config.cgroup_driver == CgroupDriverName::Systemd);
    tracing::debug!(host = ?host, "host facts");
    let sandboxes = Arc::new(sandbox_service(&config, monitor.clone(), &metrics, host.selinux)?);
    let images = Arc::new(image_service(&config, &metrics)?);
    let containers = container_service(&config, monitor, sandboxes.clone(), &images, &metrics, host)?;
    let stats = stats_service(&config, &containers, &metrics).await?;
    let readiness = Readiness::default();
    let info = RuntimeInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        cgroup_driver: match config.cgroup_driver {
            CgroupDriverName::Cgroupfs => CgroupDriver::Cgroupfs,
            CgroupDriverName::Systemd => CgroupDriver::Systemd,
        },
        runtime_handlers: runtime_handler_names(&config),
        config_json: serde_json::to_string(&config).unwrap_or_default(),
    };
    let streams = Arc::new(stream_server(&config, &containers).await?);
    let admin_images = crius_server::admin_images(images.clone(), readiness.clone());
    let (runtime_service, image_service) =
        crius_server::services(containers.clone(), images, stats, streams.clone(), info, readiness.clone());
    let server = tonic::transport::Server::builder()
        .layer(crius_metrics::GrpcMetricsLayer::new(metrics.clone()))
        .add_service(runtime_service)
        .add_service(image_service)
        .add_service(admin_images)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), {
            let readiness = readiness.clone();
            async move {
                shutdown_signal().await;
                readiness.set_stopping();
            }
        });
    let server = tokio::spawn(server);
    tracing::info!(socket = %config.listen.display(), "crius is listening; recovering state");

    let recovering = containers.clone();
    let (pods, ctrs) = tokio::task::spawn_blocking(move || {
        load_default_apparmor_profile(&recovering);
        let pods = recovering.sandboxes().recover().context("recovering pods")?;
        let containers = recovering.recover().context("recovering containers")?;
        anyhow::Ok((pods, containers))
    })
    .await
    .context("recovery task failed")??;
    for problem in pods.problems.iter().chain(&ctrs.problems) {
        tracing::error!(problem = %problem, "recovery");
    }
    tracing::info!(
        pods_ready = pods.ready,
        pods_not_ready = pods.not_ready,
        pods_undone = pods.undone.len(),
        containers_running = ctrs.running,
        containers_exited = ctrs.exited,
        containers_undone = ctrs.undone.len(),
        "recovery done; serving CRI"
    );
    readiness.set_ready();

    let served = server.await.context("the CRI server task failed")?;
    let _ = fs::remove_file(&config.listen);
    served.context("serving CRI")?;
    tracing::info!("crius stopped; pods keep running");
    Ok(())
}

/// The image store under `<root>/images`. Opening it runs the orphan pass: what a pull cut by a
/// crash left behind is removed before anything is served.
fn image_service(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<ImageService> {
    let options = crius_image::StoreOptions {
        root: config.root.clone(),
        // Defaults until crius.toml has the `[registries."host"]` and `[image_pull]` tables.
        registries: config.registries.clone(),
        pull: config.image_pull.clone(),
    };
    let (store, orphans) = crius_image::ImageStoreImpl::open(options, tokio::runtime::Handle::current())
        .context("opening the image store")?;
    if !orphans.is_empty() {
        tracing::info!(
            work_dirs = orphans.tmp_entries,
            layers = orphans.layers,
            blobs = orphans.blobs,
            dropped_images = ?orphans.dropped_images,
            bytes_freed = orphans.bytes_freed,
            "image store: removed what interrupted pulls left"
        );
    }
    Ok(ImageService::new(Arc::new(timed::TimedImages::new(Arc::new(store), metrics.clone()))))
}

fn monitor_port(config: &Config) -> anyhow::Result<crius_monitor::MonitorPort> {
    let mut monitor_config = crius_monitor::MonitorConfig::new(
        std::env::current_exe().context("finding the crius binary")?,
        config.state.clone(),
    );
    monitor_config.netns_dir = config.netns_dir().map(Path::to_path_buf);
    monitor_config.cgroup_root = config.cgroup_root.clone();
    monitor_config.cgroup_driver = match config.cgroup_driver {
        CgroupDriverName::Cgroupfs => crius_sys::cgroups::CgroupDriver::Cgroupfs,
        CgroupDriverName::Systemd => crius_sys::cgroups::CgroupDriver::Systemd,
    };
    Ok(crius_monitor::MonitorPort::new(monitor_config))
}

/// Handler names, the default first (Status lists it also under "").
fn runtime_handler_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.default_runtime.clone()];
    names.extend(config.runtimes.keys().filter(|n| **n != config.default_runtime).cloned());
    names
}

/// crius's default AppArmor profile, where AppArmor is enabled. A failure does not stop the
/// daemon: containers that ask for nothing or for RuntimeDefault then fail to be created with
/// the reason (CreateContainer tries to load it again), the others run.
fn load_default_apparmor_profile(containers: &ContainerService) {
    match containers.load_default_apparmor_profile() {
        Ok(true) => tracing::info!(profile = crius_core::spec::apparmor::DEFAULT_PROFILE, "AppArmor profile loaded"),
        Ok(false) => tracing::debug!("AppArmor is not enabled: containers run with no AppArmor profile"),
        Err(e) => tracing::warn!(
            profile = crius_core::spec::apparmor::DEFAULT_PROFILE,
            error = %e,
            "AppArmor is enabled but crius's default profile could not be loaded: RuntimeDefault containers will fail to be created"
        ),
    }
}

fn sandbox_service(
    config: &Config,
    monitor: Arc<crius_monitor::MonitorPort>,
    metrics: &Arc<Metrics>,
    selinux: bool,
) -> anyhow::Result<SandboxService> {
    let host_ports: Arc<dyn crius_core::ports::network::HostPorts> = match config.network.hostport_manager {
        crius_net::HostPortManagerKind::Crius => Arc::new(crius_net::HostPortManager::new(
            config.network.hostport_table.clone(),
            config.network.masquerade_mark,
        )),
        crius_net::HostPortManagerKind::Cni => Arc::new(crius_net::NoHostPorts),
    };
    let pod_state = Arc::new(
        FileStateStore::new(&config.root, "pods")
            .and_then(|s| s.with_volatile_dir(config.state.join("records").join("pods")))
            .context("preparing the pod record store")?,
    );
    let network = Arc::new(crius_net::CniNetwork::new(config.network.clone(), config.root.join("cni").join("results")));
    let ports = Ports {
        pod_state: Arc::new(timed::PodStateTimeline::new(pod_state, metrics.clone())),
        pod_files: Arc::new(HostPodFiles::new(&config.root, &config.state).context("preparing pod directories")?),
        monitor,
        network: Arc::new(timed::TimedNetwork::new(network, metrics.clone())),
        host_ports: Arc::new(timed::TimedHostPorts::new(host_ports, metrics.clone())),
    };
    let options = SandboxOptions {
        shm_size_bytes: config.shm_size,
        ipv6_dad: config.ipv6_dad,
        runtime_handlers: runtime_handler_names(config),
        selinux,
    };
    let mut service =
        SandboxService::new(ports, options).with_observer(Arc::new(timed::PodMonitorExits::new(metrics.clone())));
    if let Ok(step) = std::env::var(CRASH_AT_ENV) {
        tracing::warn!(step = %step, "{CRASH_AT_ENV} is set: crius will kill itself before that step");
        service = service.with_step_hook(Arc::new(move |current| {
            if current == step {
                eprintln!("{CRASH_AT_ENV}={step}: killing crius now");
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
        }));
    }
    Ok(service)
}

fn container_service(
    config: &Config,
    monitor: Arc<crius_monitor::MonitorPort>,
    sandboxes: Arc<SandboxService>,
    images: &ImageService,
    metrics: &Arc<Metrics>,
    host: crius_core::spec::HostCaps,
) -> anyhow::Result<Arc<ContainerService>> {
    let handlers = config.runtime_handlers();
    for handler in handlers.values() {
        if !Path::new(&handler.binary).is_file() {
            tracing::warn!(handler = %handler.name, binary = %handler.binary, "runtime binary not found; pods using this handler will fail");
        }
    }
    let state = Arc::new(
        FileStateStore::new(&config.root, "containers")
            .and_then(|s| s.with_volatile_dir(config.state.join("records").join("containers")))
            .context("preparing the container record store")?,
    );
    let ports = ContainerPorts {
        state: Arc::new(timed::ContainerStateTimeline::new(state, metrics.clone())),
        fs: Arc::new(HostContainerFs::new(&config.root, &config.state).context("preparing container directories")?),
        monitor: Arc::new(timed::TimedContainerMonitor::new(monitor, metrics.clone())),
        exits: Arc::new(crius_monitor::ExitDir::new(config.state.join("exits"))),
        oci: Arc::new(crius_oci::OciPort::new(crius_oci::OciConfig::new(config.state.join("oci")))),
        images: images.store().clone(),
        apparmor: Arc::new(crate::adapters::apparmor::HostAppArmor::default()),
    };
    let options = ContainerOptions { runtimes: handlers, default_runtime: config.default_runtime.clone(), host };
    Ok(ContainerService::new_shared(ports, sandboxes, options))
}

/// Stats over the host's cgroups, pod network namespaces and writable layers; the Prometheus
/// endpoint when `[metrics] address` is set, with pods and containers counted at each scrape.
async fn stats_service(
    config: &Config,
    containers: &Arc<ContainerService>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<StatsService>> {
    let interval = std::time::Duration::from_secs(config.metrics.layer_usage_interval_secs.max(1));
    let source = Arc::new(crate::adapters::stats::HostStats::new(&config.cgroup_root, &config.root, interval));
    let options = StatsOptions { systemd_cgroup: config.cgroup_driver == CgroupDriverName::Systemd };
    let stats = Arc::new(StatsService::new(containers.clone(), source, options));
    let weak = Arc::downgrade(containers);
    metrics.set_object_counts(move || weak.upgrade().map(|c| object_counts(&c)).unwrap_or_default());
    if let Some(address) = config.metrics.socket_addr()? {
        let (bound, serving) = crius_metrics::serve(address, metrics.clone(), std::future::pending()).await?;
        tokio::spawn(serving);
        tracing::info!(address = %bound, "serving Prometheus metrics on /metrics");
    }
    Ok(stats)
}

fn object_counts(containers: &ContainerService) -> crius_metrics::ObjectCounts {
    use crius_core::container::model::ContainerState;
    use crius_core::sandbox::model::PodState;
    let mut pods = [("creating", 0), ("ready", 0), ("not_ready", 0), ("stopped", 0)];
    for entry in containers.sandboxes().pods().all() {
        let i = match entry.read(|r| r.state) {
            PodState::Creating => 0,
            PodState::Ready if !entry.process_exited() => 1,
            PodState::Ready => 2,
            PodState::Stopped => 3,
        };
        pods[i].1 += 1;
    }
    let mut ctrs = [("creating", 0), ("created", 0), ("running", 0), ("exited", 0)];
    for entry in containers.containers().all() {
        let i = match entry.read(|r| r.state) {
            ContainerState::Creating => 0,
            ContainerState::Created => 1,
            ContainerState::Running => 2,
            ContainerState::Exited => 3,
        };
        ctrs[i].1 += 1;
    }
    crius_metrics::ObjectCounts { pods: pods.to_vec(), containers: ctrs.to_vec() }
}

/// The streaming server: exec through the container's OCI runtime, attach through its pod's
/// monitor, port-forward inside the pod's network namespace.
async fn stream_server(
    config: &Config,
    containers: &Arc<ContainerService>,
) -> anyhow::Result<crius_stream::StreamServer> {
    // Weak: the server must not keep the container service alive past shutdown.
    let lookup = |containers: &std::sync::Weak<ContainerService>, id: &str| {
        let containers =
            containers.upgrade().ok_or_else(|| crius_stream::BackendError::Runtime("crius is stopping".into()))?;
        containers.status(id).map_err(|_| crius_stream::BackendError::NotFound(id.to_string()))
    };
    let weak = Arc::downgrade(containers);
    let resolve: crius_stream::runc_exec::ResolveRuntime =
        Arc::new(move |id: &str| lookup(&weak, id).map(|v| v.record.runtime));
    let weak = Arc::downgrade(containers);
    let pod_of: crate::adapters::attach::ResolvePod =
        Arc::new(move |id: &str| lookup(&weak, id).map(|v| v.record.pod_id));
    let backends = crius_stream::Backends {
        exec: Arc::new(crius_stream::runc_exec::RuncExec::new(resolve, config.state.join("exec"))),
        attach: Arc::new(crate::adapters::attach::MonitorAttach::new(config.state.clone(), pod_of)),
        port_forward: Arc::new(crius_stream::netns::NetnsPortForward::default()),
    };
    let s = &config.streaming;
    let server_config = crius_stream::ServerConfig {
        addr: s.address,
        idle_timeout: std::time::Duration::from_secs(s.idle_timeout_secs),
        tls: s.tls_cert.clone().zip(s.tls_key.clone()).map(|(cert, key)| crius_stream::TlsFiles { cert, key }),
        ..Default::default()
    };
    let server =
        crius_stream::StreamServer::start(server_config, backends).await.context("starting the streaming server")?;
    tracing::info!(url = %server.base_url(), "streaming server for exec, attach and port-forward");
    Ok(server)
}

/// Binds the CRI socket (mode 0660). A stale socket file is replaced; a live one means another
/// daemon serves it.
fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
            bail!(
                "another process is serving {}: stop that crius daemon first, or give this one another --listen",
                path.display()
            );
        }
        fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop crius with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing calls in flight, then stopping"),
        _ = int.recv() => tracing::info!("SIGINT: finishing calls in flight, then stopping"),
    }
}
