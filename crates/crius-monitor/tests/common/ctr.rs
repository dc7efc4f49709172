//! Containers for the root integration tests: a busybox rootfs, bundles that join the pod's
//! pinned namespaces, a runc root of the test's own, and guards that delete every container
//! from the runtime even when a test fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crius_core::ports::PodMonitor;
use crius_core::ports::container::{
    ContainerExit, ContainerLaunch, ContainerMonitor, ExitRecords, OciRuntime, RuntimeHandler,
};
use crius_core::sandbox::model::{PodResources, ProcRef};
use crius_oci::testing::{BundleSpec, busybox_rootfs};
use crius_oci::{OciConfig, OciPort};
use oci_spec::runtime::LinuxNamespaceType;

use super::{Env, PodGuard, eventually, unique};

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// A test's container world: rootfs, runtime, OCI port, one committed pod.
pub struct World<'a> {
    pub env: &'a Env,
    pub rootfs: PathBuf,
    pub runtime: RuntimeHandler,
    pub oci: OciPort,
    pub pod_id: String,
    pub pod: PodResources,
    _pod_guard: PodGuard<'a>,
}

impl<'a> World<'a> {
    /// A pod with new net, ipc, uts and pid namespaces, and runc with a root of its own.
    pub fn new(env: &'a Env, name: &str) -> World<'a> {
        let rootfs = env.tmp.path().join("rootfs");
        busybox_rootfs(&rootfs).expect("building the busybox rootfs (apt-get install busybox-static)");
        let runc = which("runc").expect("runc is not installed (apt-get install runc)");
        let runtime = RuntimeHandler {
            name: "runc".into(),
            binary: runc.to_string_lossy().into_owned(),
            root: env.tmp.path().join("runc").to_string_lossy().into_owned(),
            ..Default::default()
        };
        let pod_id = unique(name);
        let (pod, pending) = env.port.start(&env.spec(&pod_id)).expect("starting the pod");
        let guard = PodGuard { port: &env.port, pod_id: pod_id.clone(), resources: pod.clone() };
        pending.commit().expect("commit");
        let oci = OciPort::new(OciConfig::new(env.tmp.path().join("oci")));
        World { env, rootfs, runtime, oci, pod_id, pod, _pod_guard: guard }
    }

    /// A bundle for `args` joining the pod's namespaces (a new mount namespace of its own), in a
    /// cgroup under the pod's; and the launch that creates it with a log file.
    pub fn launch(&self, container_id: &str, args: &[&str]) -> (BundleSpec, ContainerLaunch) {
        let mut spec = BundleSpec::new(args);
        for (typ, path) in [
            (LinuxNamespaceType::Network, &self.pod.namespaces.net),
            (LinuxNamespaceType::Ipc, &self.pod.namespaces.ipc),
            (LinuxNamespaceType::Uts, &self.pod.namespaces.uts),
            (LinuxNamespaceType::Pid, &self.pod.namespaces.pid),
        ] {
            spec = spec.join(typ, path.clone().expect("the pod pins every namespace"));
        }
        let cgroup = format!("{}/{container_id}", self.pod.cgroup.as_deref().expect("the pod has a cgroup"));
        spec.cgroups_path = Some(cgroup.clone());
        let bundle = self.env.tmp.path().join("bundles").join(container_id);
        let launch = ContainerLaunch {
            container_id: container_id.to_string(),
            bundle: bundle.to_string_lossy().into_owned(),
            runtime: self.runtime.clone(),
            log_path: Some(self.log_path(container_id).to_string_lossy().into_owned()),
            stdin: false,
            stdin_once: false,
            tty: false,
            cgroup: Some(cgroup),
        };
        (spec, launch)
    }

    pub fn log_path(&self, container_id: &str) -> PathBuf {
        self.env.tmp.path().join("logs").join(container_id).join("0.log")
    }

    /// Writes the bundle and creates the container through the monitor.
    pub fn create(&self, spec: &BundleSpec, launch: &ContainerLaunch) -> Created<'_> {
        let (ctr, init) = self.try_create(spec, launch);
        Created { init: init.expect("create_container"), ctr }
    }

    /// Like `create`, with the guard returned whatever the outcome.
    pub fn try_create(&self, spec: &BundleSpec, launch: &ContainerLaunch) -> (Ctr<'_>, crius_core::Result<ProcRef>) {
        spec.write(Path::new(&launch.bundle), &self.rootfs).expect("writing the bundle");
        let ctr = Ctr { world: self, id: launch.container_id.clone() };
        (ctr, self.env.port.create_container(&self.pod_id, launch))
    }

    pub fn start(&self, container_id: &str) {
        self.env.port.start_container(&self.pod_id, container_id).expect("start_container");
    }

    pub fn exit_of(&self, container_id: &str, timeout: Duration) -> Option<ContainerExit> {
        let exits = self.env.port.exit_records();
        let mut found = None;
        eventually(timeout, || {
            found = exits.read(container_id).expect("reading the exit record");
            found.is_some()
        });
        found
    }

    pub fn log_lines(&self, container_id: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(container_id)).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

/// A container, deleted from the runtime when dropped.
pub struct Ctr<'w> {
    pub world: &'w World<'w>,
    pub id: String,
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.world.oci.delete(&self.world.runtime, &self.id) {
            eprintln!("cleanup: deleting container {}: {e}", self.id);
        }
    }
}

/// A created container and its init.
pub struct Created<'w> {
    pub ctr: Ctr<'w>,
    pub init: ProcRef,
}
