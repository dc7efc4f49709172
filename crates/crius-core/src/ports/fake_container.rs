//! Fakes of the container ports (and of the image store, as containers see it), sharing the
//! pod fakes' `World`-style log and one-shot fault injection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::StateStore;
use super::apparmor::AppArmor;
use super::container::{
    ContainerExit, ContainerFs, ContainerLaunch, ContainerMonitor, ContainerPaths, ContainerPorts, ExecOutput,
    ExitRecords, OciRuntime, RuntimeHandler,
};
use super::image::ImageStore;
use crate::container::model::{ContainerRecord, Device, Mount};
use crate::error::{Error, Result};
use crate::image::{Digest, FsUsage, ImageConfigInfo, ImageRecord, ImageRef, RegistryAuth};
use crate::sandbox::model::ProcRef;
use crate::spec::HostDevice;

type ExitCallback = Arc<dyn Fn(ContainerExit) + Send + Sync>;

#[derive(Default)]
pub struct ContainerWorld {
    pub log: Vec<String>,
    /// Operation name -> how many more calls succeed before one fails.
    pub fail_next: BTreeMap<&'static str, usize>,
    pub records: BTreeMap<String, ContainerRecord>,
    pub rootfs: BTreeSet<String>,
    pub runtime_containers: BTreeSet<String>,
    /// Live container processes by pid.
    pub alive: BTreeSet<i32>,
    pub holds: BTreeMap<String, String>,
    pub exits: BTreeMap<String, ContainerExit>,
    pub images: Vec<ImageRecord>,
    pub specs: BTreeMap<String, serde_json::Value>,
    /// The host paths of the CRI mounts each create prepared, in order.
    pub mount_sources: Vec<String>,
    /// (path, label) of every relabel, in order.
    pub relabels: Vec<(String, String)>,
    pub next_pid: i32,
    pub signals: Vec<(i32, i32)>,
    pub exec: Option<ExecOutput>,
    pub updated: Vec<oci_spec::runtime::LinuxResources>,
    /// The image volumes made for each container.
    pub volumes: BTreeMap<String, Vec<Mount>>,
    /// The AppArmor profiles loaded in the fake kernel.
    pub apparmor_profiles: BTreeSet<String>,
}

#[derive(Clone, Default)]
pub struct ContainerFakes {
    pub world: Arc<Mutex<ContainerWorld>>,
    watchers: Arc<Mutex<Vec<ExitCallback>>>,
}

impl ContainerFakes {
    pub fn ports(&self) -> ContainerPorts {
        ContainerPorts {
            state: Arc::new(self.clone()),
            fs: Arc::new(self.clone()),
            monitor: Arc::new(self.clone()),
            exits: Arc::new(self.clone()),
            oci: Arc::new(self.clone()),
            images: Arc::new(self.clone()),
            apparmor: Arc::new(self.clone()),
        }
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, ContainerWorld> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail_nth(&self, op: &'static str, skip: usize) {
        self.world().fail_next.insert(op, skip);
    }

    pub fn fail_once(&self, op: &'static str) {
        self.fail_nth(op, 0);
    }

    pub fn log(&self) -> Vec<String> {
        self.world().log.clone()
    }

    /// Adds an image named `name` (a full reference) with `config`.
    pub fn add_image(&self, name: &str, config: ImageConfigInfo) -> Digest {
        let mut w = self.world();
        let hex = format!("{:064x}", w.images.len() + 1);
        let id = Digest::from_sha256_hex(&hex).expect("64 hex characters are a sha256 digest");
        w.images.push(ImageRecord {
            id: id.clone(),
            repo_tags: vec![name.to_string()],
            repo_digests: Vec::new(),
            manifest_digest: id.clone(),
            size: 1,
            pinned: false,
            config,
            layers: Vec::new(),
        });
        id
    }

    /// Nothing of any container exists any more.
    pub fn is_empty(&self) -> bool {
        let w = self.world();
        w.records.is_empty()
            && w.rootfs.is_empty()
            && w.runtime_containers.is_empty()
            && w.holds.is_empty()
            && w.volumes.is_empty()
    }

    /// The container's process exits with `code`, and its monitor records it.
    pub fn exit(&self, container_id: &str, code: i32) {
        let exit = {
            let mut w = self.world();
            let pid = w.records.get(container_id).and_then(|r| r.process).map(|p| p.pid).unwrap_or_default();
            w.alive.remove(&pid);
            let exit = ContainerExit {
                container_id: container_id.to_string(),
                pid,
                exit_code: code,
                finished_at_ns: 1,
                ..Default::default()
            };
            w.exits.insert(container_id.to_string(), exit.clone());
            exit
        };
        let watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for w in watchers {
            w(exit.clone());
        }
    }

    fn op(&self, name: &'static str, id: &str) -> Result<std::sync::MutexGuard<'_, ContainerWorld>> {
        let mut w = self.world();
        w.log.push(format!("{name} {}", super::fake::short(id)));
        super::fake::injected_fault(&mut w.fail_next, name, id)?;
        Ok(w)
    }
}

impl StateStore<ContainerRecord> for ContainerFakes {
    fn save(&self, record: &ContainerRecord) -> Result<()> {
        self.op("save", &record.id)?.records.insert(record.id.clone(), record.clone());
        Ok(())
    }
    fn amend(&self, record: &ContainerRecord) -> Result<()> {
        self.op("amend", &record.id)?.records.insert(record.id.clone(), record.clone());
        Ok(())
    }
    fn load_all(&self) -> Result<Vec<ContainerRecord>> {
        Ok(self.world().records.values().cloned().collect())
    }
    fn delete(&self, id: &str) -> Result<()> {
        self.op("delete", id)?.records.remove(id);
        Ok(())
    }
}

impl ContainerFs for ContainerFakes {
    fn prepare(&self, container_id: &str, _layers: &[PathBuf]) -> Result<ContainerPaths> {
        self.op("prepare", container_id)?.rootfs.insert(container_id.to_string());
        Ok(ContainerPaths {
            bundle: format!("/run/crius/containers/{container_id}/bundle"),
            rootfs: format!("/run/crius/containers/{container_id}/bundle/rootfs"),
        })
    }
    fn read_user_db(&self, paths: &ContainerPaths) -> Result<(String, String)> {
        drop(self.op("read_user_db", &paths.bundle)?);
        Ok(("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n".into(), "root:x:0:\n".into()))
    }
    fn create_volumes(&self, container_id: &str, _paths: &ContainerPaths, volumes: &[String]) -> Result<Vec<Mount>> {
        let mut w = self.op("create_volumes", container_id)?;
        let mounts: Vec<Mount> = volumes
            .iter()
            .enumerate()
            .map(|(i, v)| Mount {
                container_path: v.clone(),
                host_path: format!("/var/lib/crius/containers/{container_id}/volumes/{i}"),
                selinux_relabel: true,
                ..Default::default()
            })
            .collect();
        w.volumes.insert(container_id.to_string(), mounts.clone());
        Ok(mounts)
    }
    fn remove_volumes(&self, container_id: &str) -> Result<()> {
        self.op("remove_volumes", container_id)?.volumes.remove(container_id);
        Ok(())
    }
    fn resolve_devices(&self, devices: &[Device], _all: bool) -> Result<Vec<HostDevice>> {
        Ok(devices
            .iter()
            .map(|d| HostDevice {
                host_path: d.host_path.clone(),
                container_path: d.container_path.clone(),
                kind: 'c',
                major: 1,
                minor: 3,
                file_mode: 0o666,
                uid: 0,
                gid: 0,
                permissions: d.permissions.clone(),
            })
            .collect())
    }
    fn read_seccomp_profile(&self, path: &str) -> Result<String> {
        drop(self.op("read_seccomp_profile", path)?);
        Ok(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#.into())
    }
    fn write_spec(&self, paths: &ContainerPaths, spec_json: &[u8]) -> Result<()> {
        let id = paths.bundle.rsplit('/').nth(1).unwrap_or_default().to_string();
        let spec = serde_json::from_slice(spec_json).map_err(|e| Error::internal("fake spec", e))?;
        self.op("write_spec", &id)?.specs.insert(id, spec);
        Ok(())
    }
    fn prepare_mount_sources(&self, mounts: &[Mount]) -> Result<()> {
        let mut w = self.op("mount_sources", "")?;
        w.mount_sources.extend(mounts.iter().map(|m| m.host_path.clone()));
        Ok(())
    }
    fn relabel(&self, path: &str, label: &str) -> Result<()> {
        self.op("relabel", path)?.relabels.push((path.to_string(), label.to_string()));
        Ok(())
    }
    fn read_spec(&self, bundle: &str) -> Result<Option<Vec<u8>>> {
        let id = bundle.rsplit('/').nth(1).unwrap_or_default();
        let w = self.op("read_spec", id)?;
        w.specs.get(id).map(|s| serde_json::to_vec(s).map_err(|e| Error::internal("fake spec", e))).transpose()
    }
    fn ensure_log_dir(&self, log_path: &str) -> Result<()> {
        drop(self.op("ensure_log_dir", log_path)?);
        Ok(())
    }
    fn cleanup(&self, container_id: &str) -> Result<()> {
        let mut w = self.op("cleanup", container_id)?;
        w.rootfs.remove(container_id);
        w.volumes.remove(container_id);
        Ok(())
    }
}

impl ContainerMonitor for ContainerFakes {
    fn create_container(&self, _pod_id: &str, launch: &ContainerLaunch) -> Result<ProcRef> {
        let mut w = self.op("create_container", &launch.container_id)?;
        w.next_pid += 1;
        let pid = 5000 + w.next_pid;
        w.alive.insert(pid);
        w.runtime_containers.insert(launch.container_id.clone());
        Ok(ProcRef { pid, start_time: 7 })
    }
    fn start_container(&self, _pod_id: &str, container_id: &str) -> Result<()> {
        drop(self.op("start_container", container_id)?);
        Ok(())
    }
    fn reopen_log(&self, _pod_id: &str, container_id: &str) -> Result<()> {
        drop(self.op("reopen_log", container_id)?);
        Ok(())
    }
    fn signal(&self, process: &ProcRef, signal: i32) -> Result<bool> {
        let id = process.pid.to_string();
        let mut w = self.op("signal", &id)?;
        w.signals.push((process.pid, signal));
        let alive = w.alive.contains(&process.pid);
        // The fake processes die of any signal but one the test chose to ignore (SIGUSR2 = 12).
        if alive && signal != 12 {
            w.alive.remove(&process.pid);
            let container =
                w.records.values().find(|r| r.process.map(|p| p.pid) == Some(process.pid)).map(|r| r.id.clone());
            if let Some(container) = container {
                let exit = ContainerExit {
                    container_id: container.clone(),
                    pid: process.pid,
                    exit_code: 128 + signal,
                    signal: Some(signal),
                    finished_at_ns: 2,
                    ..Default::default()
                };
                w.exits.insert(container, exit);
            }
        }
        Ok(alive)
    }
    fn wait_exit(&self, process: &ProcRef, _timeout: Duration) -> Result<bool> {
        Ok(!self.world().alive.contains(&process.pid))
    }
}

impl ExitRecords for ContainerFakes {
    fn read(&self, container_id: &str) -> Result<Option<ContainerExit>> {
        Ok(self.world().exits.get(container_id).cloned())
    }
    fn remove(&self, container_id: &str) -> Result<()> {
        self.op("remove_exit", container_id)?.exits.remove(container_id);
        Ok(())
    }
    fn watch(&self, on_exit: Box<dyn Fn(ContainerExit) + Send + Sync>) -> Result<()> {
        let on_exit: ExitCallback = Arc::from(on_exit);
        let existing: Vec<_> = self.world().exits.values().cloned().collect();
        for exit in existing {
            on_exit(exit);
        }
        self.watchers.lock().unwrap_or_else(|p| p.into_inner()).push(on_exit);
        Ok(())
    }
}

impl OciRuntime for ContainerFakes {
    fn delete(&self, _runtime: &RuntimeHandler, container_id: &str) -> Result<()> {
        self.op("oci_delete", container_id)?.runtime_containers.remove(container_id);
        Ok(())
    }
    fn exec_sync(
        &self,
        _runtime: &RuntimeHandler,
        container_id: &str,
        command: &[String],
        _timeout: Option<Duration>,
    ) -> Result<ExecOutput> {
        let w = self.op("exec_sync", container_id)?;
        Ok(w.exec.clone().unwrap_or(ExecOutput {
            exit_code: 0,
            stdout: command.join(" ").into_bytes(),
            ..Default::default()
        }))
    }
    fn update_resources(
        &self,
        _runtime: &RuntimeHandler,
        container_id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<()> {
        self.op("update_resources", container_id)?.updated.push(resources.clone());
        Ok(())
    }
}

impl AppArmor for ContainerFakes {
    fn is_loaded(&self, profile: &str) -> Result<bool> {
        Ok(self.op("apparmor_is_loaded", profile)?.apparmor_profiles.contains(profile))
    }
    fn load_default(&self, profile: &str) -> Result<()> {
        self.op("apparmor_load", profile)?.apparmor_profiles.insert(profile.to_string());
        Ok(())
    }
}

impl ImageStore for ContainerFakes {
    fn pull(&self, reference: &ImageRef, _auth: &RegistryAuth) -> Result<ImageRecord> {
        Err(Error::not_found(format!("the fake registry has no {}", reference.name())))
    }
    fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.world().images.clone())
    }
    fn config_json(&self, _id: &Digest) -> Result<Vec<u8>> {
        Ok(b"{}".to_vec())
    }
    fn untag(&self, _id: &Digest, _name: &str) -> Result<()> {
        Ok(())
    }
    fn remove(&self, _id: &Digest) -> Result<()> {
        Ok(())
    }
    fn usage(&self) -> Result<FsUsage> {
        Ok(FsUsage::default())
    }
    fn hold_layers(&self, holder: &str, id: &Digest) -> Result<Vec<PathBuf>> {
        self.op("hold_layers", holder)?.holds.insert(holder.to_string(), id.to_string());
        Ok(vec![PathBuf::from("/var/lib/crius/images/layers/l1")])
    }
    fn release_layers(&self, holder: &str) -> Result<()> {
        self.op("release_layers", holder)?.holds.remove(holder);
        Ok(())
    }
    fn import_archive(&self, archive: &std::path::Path) -> Result<Vec<ImageRecord>> {
        Err(Error::invalid(format!("the fake store imports nothing ({})", archive.display())))
    }
}
