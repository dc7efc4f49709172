//! CreateContainer: intent on disk first, then the layers, rootfs, spec and the runtime's
//! container, each with its undo.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ContainerService;
use super::model::{
    CONTAINER_RECORD_VERSION, ContainerConfig, ContainerRecord, ContainerState, ProfileKind, container_name,
};
use crate::error::{Error, Result};
use crate::events::ContainerEventKind;
use crate::ids::new_id;
use crate::image::find_image;
use crate::ports::container::ContainerLaunch;
use crate::rollback::Rollback;
use crate::sandbox::model::PodState;
use crate::spec::{SpecInput, build_spec};
use crate::store::ContainerEntry;

impl ContainerService {
    pub fn create(&self, pod_id: &str, config: ContainerConfig) -> Result<String> {
        // From the very start, so the timeline covers the whole call.
        let mut timeline = crate::sandbox::timeline::Timeline::start(None);
        validate(&config)?;
        let pod_entry = self
            .sandboxes
            .pods()
            .find(pod_id)?
            .ok_or_else(|| Error::not_found(format!("pod sandbox {pod_id:?} not found")))?;
        // No Stop or Remove of the pod while one of its containers is being made (a create of
        // another of its containers holds it as well, hence a step).
        let _pod_op = timeline.step("lock_pod", || pod_entry.lock_op());
        let pod = pod_entry.snapshot();
        if pod.state != PodState::Ready || pod_entry.process_exited() {
            return Err(Error::precondition(format!(
                "pod sandbox {} is not ready: containers can only be created in a ready pod",
                pod.id
            )));
        }
        if config.security.privileged && !pod.config.privileged {
            return Err(Error::invalid(
                "container config: privileged is set but the pod sandbox is not privileged; set privileged on the pod's security context too",
            ));
        }
        let (runtime, image, target_pid_ns) = timeline.step("lookup", || {
            let runtime = self.runtime_for(&pod.config.runtime_handler)?;
            let image =
                find_image(&self.ports.images.list()?, &config.image)?.map(|(image, _)| image).ok_or_else(|| {
                    Error::not_found(format!(
                        "image {:?} is not present on this node: pull it first (crictl pull {})",
                        config.image, config.image
                    ))
                })?;
            let target_pid_ns = self.target_pid_namespace(&pod.id, &config)?;
            self.check_lsm(&config.metadata.name, &config.security)?;
            Ok::<_, Error>((runtime, image, target_pid_ns))
        })?;

        let id = new_id()?;
        let name = container_name(&config.metadata, &pod.config.metadata);
        let reservation = timeline.step("reserve", || self.names.reserve(&name, &id))?;
        let log_path = (!pod.config.log_directory.is_empty() && !config.log_path.is_empty())
            .then(|| format!("{}/{}", pod.config.log_directory.trim_end_matches('/'), config.log_path));

        let mut record = ContainerRecord {
            version: CONTAINER_RECORD_VERSION,
            id: id.clone(),
            pod_id: pod.id.clone(),
            image_id: image.id.to_string(),
            image_ref: config.image.clone(),
            runtime: runtime.clone(),
            state: ContainerState::Creating,
            // The timeline's origin: StartContainer places its steps after CreateContainer's by it.
            created_at_ns: timeline.origin_ns(),
            started_at_ns: 0,
            process: None,
            exit: None,
            log_path: log_path.clone(),
            user: None,
            resources: config.resources.clone(),
            stop_signal: 15,
            bundle: String::new(),
            timeline: Vec::new(),
            config,
        };
        let ports = &self.ports;
        let mut rb = Rollback::new();

        rb.push("container record", || ports.state.delete(&id));
        timeline
            .step("state_creating", || ports.state.save_volatile(&record))
            .map_err(|e| e.context(format!("recording container {id}")))?;

        rb.push("image layers hold", || ports.images.release_layers(&id));
        let layers = match timeline.step("hold_layers", || ports.images.hold_layers(&id, &image.id)) {
            Ok(l) => l,
            Err(e) => return Err(rb.fail(e.context(format!("holding the layers of image {}", image.id)))),
        };

        rb.push("rootfs", || ports.fs.cleanup(&id));
        let paths = match timeline.step("rootfs", || ports.fs.prepare(&id, &layers)) {
            Ok(p) => p,
            Err(e) => return Err(rb.fail(e.context(format!("preparing the rootfs of container {id}")))),
        };
        record.bundle = paths.bundle.clone();

        let volumes = crate::spec::mounts::image_volumes(&image.config.volumes, &record.config.mounts);
        rb.push("image volumes", || ports.fs.remove_volumes(&id));
        let volume_binds = match timeline.step("volumes", || ports.fs.create_volumes(&id, &paths, &volumes)) {
            Ok(v) => v,
            Err(e) => return Err(rb.fail(e.context(format!("making the image volumes of container {id}")))),
        };

        let built = timeline.step("spec", || {
            let (passwd, group) = ports.fs.read_user_db(&paths)?;
            // No undo on purpose, as containerd: a host path created here may be the one another
            // container of the node is about to bind, and the kubelet's hostPath DirectoryOrCreate
            // keeps what it creates as well; an empty directory left behind is harmless.
            ports.fs.prepare_mount_sources(&record.config.mounts)?;
            let devices = ports.fs.resolve_devices(&record.config.devices, record.config.security.privileged)?;
            let seccomp_json = match record.config.security.seccomp.kind {
                ProfileKind::Localhost if !record.config.security.privileged => {
                    Some(ports.fs.read_seccomp_profile(&record.config.security.seccomp.localhost_ref)?)
                }
                _ => None,
            };
            if let Some(log) = &log_path {
                ports.fs.ensure_log_dir(log)?;
            }
            let pod_files = self.sandboxes.pod_file_paths(&pod.id);
            let pod_shm = (!pod.config.namespaces.host_ipc()).then_some(pod_files.shm.as_str());
            let extra = BTreeMap::new();
            let input = SpecInput {
                container_id: &id,
                config: &record.config,
                pod: &pod,
                image: &image.config,
                image_name: &record.image_ref,
                rootfs: &paths.rootfs,
                passwd: &passwd,
                group: &group,
                pod_hostname_file: &pod_files.hostname,
                pod_hosts_file: &pod_files.hosts,
                pod_resolv_file: &pod_files.resolv_conf,
                pod_shm,
                image_volumes: &volume_binds,
                devices: &devices,
                target_pid_ns: target_pid_ns.as_deref(),
                extra_annotations: &extra,
                host: &self.options.host,
                seccomp_localhost_json: seccomp_json.as_deref(),
            };
            let built = build_spec(&input)?;
            if let Some(relabel) = &built.relabel {
                for path in &relabel.paths {
                    ports.fs.relabel(path, &relabel.label).map_err(|e| {
                        e.context(format!("giving {path} the container's SELinux label {}", relabel.label))
                    })?;
                }
            }
            let json = serde_json::to_vec(&built.spec).map_err(|e| Error::internal("encoding the OCI spec", e))?;
            ports.fs.write_spec(&paths, &json)?;
            Ok::<_, Error>(built)
        });
        let built = match built {
            Ok(b) => b,
            Err(e) => return Err(rb.fail(e.context(format!("container {id}")))),
        };
        record.user = Some(built.user.clone());
        record.stop_signal = built.stop_signal;

        let launch = ContainerLaunch {
            container_id: id.clone(),
            bundle: paths.bundle.clone(),
            runtime: runtime.clone(),
            log_path: log_path.clone(),
            stdin: record.config.stdin,
            stdin_once: record.config.stdin_once,
            tty: record.config.tty,
            // A systemd-style "slice:prefix:name" is no path: OOM detection needs the cgroupfs one.
            cgroup: built
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| !p.contains(':')),
        };
        rb.push("runtime container", || ports.oci.delete(&runtime, &id));
        let process = match timeline.step("runtime_create", || ports.monitor.create_container(&pod.id, &launch)) {
            Ok(p) => p,
            Err(e) => return Err(rb.fail(e.context(format!("creating container {id} with {}", runtime.name)))),
        };
        rb.push("container process", move || ports.monitor.signal(&process, 9).map(|_| ()));

        record.process = Some(process);
        record.state = ContainerState::Created;
        record.timeline = timeline.steps().to_vec();
        if let Err(e) = timeline.step("state_created", || ports.state.save_unflushed(&record)) {
            return Err(rb.fail(e.context(format!("recording container {id} as created"))));
        }
        // The durable record cannot hold the duration of its own save: amend it (no flush).
        record.timeline = timeline.steps().to_vec();
        if let Err(e) = ports.state.amend(&record) {
            tracing::warn!(container_id = %id, error = %e, "recording the create timeline of the container");
        }
        let pod_id = record.pod_id.clone();
        self.containers.insert(Arc::new(ContainerEntry::new(record)));
        reservation.keep();
        rb.disarm();
        self.events.emit(&id, &pod_id, ContainerEventKind::Created);
        tracing::info!(container_id = %id, pod_id = %pod_id, container = %name, "container created");
        Ok(id)
    }

    /// TARGET pid mode: the named container must be in the same pod, and running.
    fn target_pid_namespace(&self, pod_id: &str, config: &ContainerConfig) -> Result<Option<String>> {
        if config.security.pid_mode != crate::sandbox::model::NamespaceMode::Target {
            return Ok(None);
        }
        let target = self.find(&config.security.target_id).map_err(|e| e.context("namespace_options.target_id"))?;
        let target = target.snapshot();
        if target.pod_id != pod_id {
            return Err(Error::invalid(format!(
                "namespace_options.target_id {} is in another pod sandbox ({}); the target must be in the same pod",
                target.id, target.pod_id
            )));
        }
        match (target.state, target.process) {
            (ContainerState::Running | ContainerState::Created, Some(p)) => Ok(Some(format!("/proc/{}/ns/pid", p.pid))),
            _ => Err(Error::precondition(format!(
                "namespace_options.target_id {} is not running: its PID namespace cannot be joined",
                target.id
            ))),
        }
    }
}

fn validate(config: &ContainerConfig) -> Result<()> {
    if config.metadata.name.is_empty() {
        return Err(Error::invalid("container config: metadata.name must not be empty"));
    }
    if config.image.is_empty() {
        return Err(Error::invalid("container config: image.image must name an image"));
    }
    // Before anything is made of the host paths.
    crate::spec::mounts::validate(&config.mounts).map_err(|e| e.context("container config"))?;
    let log = &config.log_path;
    if log.starts_with('/') || log.split('/').any(|c| c == "..") {
        return Err(Error::invalid(format!(
            "container config: log_path {log:?} must be relative to the pod's log directory and stay inside it"
        )));
    }
    Ok(())
}
