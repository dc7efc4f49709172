//! `crius daemon`: the CRI server on its unix socket, wired to the real adapters.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use crius_core::ports::Ports;
use crius_core::sandbox::{SandboxOptions, SandboxService};
use crius_server::{CgroupDriver, Readiness, RuntimeInfo};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::adapters::pod_files::HostPodFiles;
use crate::adapters::state_store::FileStateStore;
use crate::config::{CgroupDriverName, Config};

/// Fault injection for the crash tests: the daemon kills itself (SIGKILL, like `kill -9`) right
/// before the named step of RunPodSandbox.
const CRASH_AT_ENV: &str = "CRIUS_CRASH_AT";

pub fn run(config: Config) -> anyhow::Result<()> {
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
    let listener = bind_socket(&config.listen)?;

    let sandboxes = Arc::new(sandbox_service(&config)?);
    let readiness = Readiness::default();
    let info = RuntimeInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        cgroup_driver: match config.cgroup_driver {
            CgroupDriverName::Cgroupfs => CgroupDriver::Cgroupfs,
            CgroupDriverName::Systemd => CgroupDriver::Systemd,
        },
        runtime_handlers: vec!["runc".to_string()],
        config_json: serde_json::to_string(&config).unwrap_or_default(),
    };
    let (runtime_service, image_service) = crius_server::services(sandboxes.clone(), info, readiness.clone());
    let server = tonic::transport::Server::builder()
        .add_service(runtime_service)
        .add_service(image_service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal());
    let server = tokio::spawn(server);
    tracing::info!(socket = %config.listen.display(), "crius is listening; recovering state");

    let recovering = sandboxes.clone();
    let report = tokio::task::spawn_blocking(move || recovering.recover())
        .await
        .context("recovery task failed")?
        .context("recovering pods")?;
    for problem in &report.problems {
        tracing::error!(problem = %problem, "recovery");
    }
    tracing::info!(
        ready = report.ready,
        not_ready = report.not_ready,
        undone = report.undone.len(),
        "recovery done; serving CRI"
    );
    readiness.set_ready();

    let served = server.await.context("the CRI server task failed")?;
    let _ = fs::remove_file(&config.listen);
    served.context("serving CRI")?;
    tracing::info!("crius stopped; pods keep running");
    Ok(())
}

fn sandbox_service(config: &Config) -> anyhow::Result<SandboxService> {
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
    let monitor = crius_monitor::MonitorPort::new(monitor_config);
    let ports = Ports {
        pod_state: Arc::new(FileStateStore::new(&config.root).context("preparing the pod record store")?),
        pod_files: Arc::new(HostPodFiles::new(&config.root, &config.state).context("preparing pod directories")?),
        monitor: Arc::new(monitor),
    };
    let options = SandboxOptions {
        shm_size_bytes: config.shm_size,
        ipv6_dad: config.ipv6_dad,
        runtime_handlers: vec!["runc".to_string()],
    };
    let mut service = SandboxService::new(ports, options);
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
