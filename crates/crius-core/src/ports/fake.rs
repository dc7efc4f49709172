//! In-memory fakes of every port, with one-shot fault injection and a log of what was done, so
//! tests can check that each failure undoes exactly the steps before it, in reverse.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use super::{MonitorSpec, PendingMonitor, PodFiles, PodMonitor, Ports, SandboxFileSet, StateStore};
use crate::error::{Error, Result};
use crate::sandbox::model::{NamespacePaths, PodRecord, PodResources, ProcRef};

/// Shared by all fakes: what exists, what happened, and which operation fails next.
#[derive(Default)]
pub struct World {
    pub log: Vec<String>,
    /// Operation name -> how many more calls succeed before one fails.
    pub fail_next: BTreeMap<&'static str, usize>,
    pub records: BTreeMap<String, PodRecord>,
    pub files: BTreeSet<String>,
    pub shm: BTreeSet<String>,
    /// Pods with a live monitor, by id; `committed` once the daemon recorded them.
    pub monitors: BTreeMap<String, bool>,
    pub dead: HashSet<i32>,
    pub next_pid: i32,
    /// Exit watches on live processes, called by `kill`.
    pub watches: Vec<(i32, Box<dyn FnOnce() + Send>)>,
}

#[derive(Clone, Default)]
pub struct Fakes {
    pub world: Arc<Mutex<World>>,
    /// The network fakes' state, shared by every `FakeNetwork::new(&fakes)`.
    pub net_state: Arc<Mutex<super::fake_network::NetState>>,
}

impl Fakes {
    pub fn ports(&self) -> Ports {
        let network = Arc::new(super::fake_network::FakeNetwork::new(self));
        Ports {
            pod_state: Arc::new(self.clone()),
            pod_files: Arc::new(self.clone()),
            monitor: Arc::new(self.clone()),
            network: network.clone(),
            host_ports: network,
        }
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next call of `op` fail (once).
    pub fn fail_once(&self, op: &'static str) {
        self.fail_nth(op, 0);
    }

    /// Makes the call of `op` after `skip` successful ones fail (once).
    pub fn fail_nth(&self, op: &'static str, skip: usize) {
        self.world().fail_next.insert(op, skip);
    }

    pub fn log(&self) -> Vec<String> {
        self.world().log.clone()
    }

    pub fn clear_log(&self) {
        self.world().log.clear();
    }

    /// Nothing of any pod exists any more.
    pub fn is_empty(&self) -> bool {
        let w = self.world();
        w.records.is_empty() && w.files.is_empty() && w.shm.is_empty() && w.monitors.is_empty()
    }

    /// The process dies: its exit watches are called (outside the lock, as they may call back).
    pub fn kill(&self, pid: i32) {
        let mut w = self.world();
        w.dead.insert(pid);
        let (fired, kept) = std::mem::take(&mut w.watches).into_iter().partition(|(p, _)| *p == pid);
        w.watches = kept;
        drop(w);
        for (_, on_exit) in fired {
            on_exit();
        }
    }

    fn op(&self, name: &'static str, id: &str) -> Result<std::sync::MutexGuard<'_, World>> {
        let mut w = self.world();
        w.log.push(format!("{name} {}", short(id)));
        injected_fault(&mut w.fail_next, name, id)?;
        Ok(w)
    }
}

/// One-shot fault injection shared by the fakes: the call of `name` that `fail_next` counts down
/// to fails, once.
pub(crate) fn injected_fault(
    fail_next: &mut BTreeMap<&'static str, usize>,
    name: &'static str,
    id: &str,
) -> Result<()> {
    match fail_next.get_mut(name) {
        Some(0) => {
            fail_next.remove(name);
            Err(Error::internal(format!("{name} {id}"), "injected fault"))
        }
        Some(skip) => {
            *skip -= 1;
            Ok(())
        }
        None => Ok(()),
    }
}

pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(6)]
}

impl StateStore<PodRecord> for Fakes {
    fn save(&self, pod: &PodRecord) -> Result<()> {
        self.op("save", &pod.id)?.records.insert(pod.id.clone(), pod.clone());
        Ok(())
    }
    fn amend(&self, pod: &PodRecord) -> Result<()> {
        self.op("amend", &pod.id)?.records.insert(pod.id.clone(), pod.clone());
        Ok(())
    }
    fn load_all(&self) -> Result<Vec<PodRecord>> {
        Ok(self.world().records.values().cloned().collect())
    }
    fn delete(&self, id: &str) -> Result<()> {
        self.op("delete", id)?.records.remove(id);
        Ok(())
    }
}

impl PodFiles for Fakes {
    fn paths(&self, pod_id: &str) -> super::PodFilePaths {
        let file = |name: &str| format!("/var/lib/crius/pods/{pod_id}/{name}");
        super::PodFilePaths {
            hostname: file("hostname"),
            hosts: file("hosts"),
            resolv_conf: file("resolv.conf"),
            shm: format!("/run/crius/pods/{pod_id}/shm"),
        }
    }

    fn create(&self, pod_id: &str, files: &SandboxFileSet) -> Result<()> {
        let mut w = self.op("create_files", pod_id)?;
        w.files.insert(pod_id.to_string());
        w.log.push(format!("hostname={}", files.hostname.trim_end()));
        Ok(())
    }
    fn write_hosts(&self, pod_id: &str, hosts: &str) -> Result<()> {
        let mut w = self.op("write_hosts", pod_id)?;
        w.log.push(format!("hosts={}", hosts.lines().last().unwrap_or_default()));
        Ok(())
    }
    fn mount_shm(&self, pod_id: &str, _size: u64) -> Result<()> {
        self.op("mount_shm", pod_id)?.shm.insert(pod_id.to_string());
        Ok(())
    }
    fn unmount_shm(&self, pod_id: &str) -> Result<()> {
        self.op("unmount_shm", pod_id)?.shm.remove(pod_id);
        Ok(())
    }
    fn remove(&self, pod_id: &str) -> Result<()> {
        self.op("remove_files", pod_id)?.files.remove(pod_id);
        Ok(())
    }
    fn host_resolv_conf(&self) -> Result<String> {
        Ok("nameserver 192.0.2.53\n".into())
    }
    fn host_hosts(&self) -> Result<String> {
        Ok("127.0.0.1 localhost node\n".into())
    }
    fn host_hostname(&self) -> Result<String> {
        Ok("node".into())
    }
}

struct FakePending {
    fakes: Fakes,
    pod_id: String,
    committed: bool,
}

impl PendingMonitor for FakePending {
    fn commit(mut self: Box<Self>) -> Result<()> {
        let mut w = self.fakes.op("commit", &self.pod_id)?;
        w.monitors.insert(self.pod_id.clone(), true);
        drop(w);
        self.committed = true;
        Ok(())
    }
}

impl Drop for FakePending {
    fn drop(&mut self) {
        // Like the real monitor: without a commit it undoes itself.
        if !self.committed {
            let mut w = self.fakes.world();
            w.log.push(format!("monitor_self_undo {}", short(&self.pod_id)));
            w.monitors.remove(&self.pod_id);
        }
    }
}

impl PodMonitor for Fakes {
    fn plan(&self, spec: &MonitorSpec) -> Result<PodResources> {
        if spec.cgroup_parent.contains("..") {
            return Err(Error::invalid(format!("cgroup parent {:?} contains ..", spec.cgroup_parent)));
        }
        let pin = |on: bool, kind: &str| on.then(|| format!("/run/crius/ns/{kind}/{}", spec.pod_id));
        Ok(PodResources {
            monitor: None,
            init: None,
            namespaces: NamespacePaths {
                net: pin(spec.namespaces.net, "net"),
                ipc: pin(spec.namespaces.ipc, "ipc"),
                uts: pin(spec.namespaces.uts, "uts"),
                pid: pin(spec.namespaces.pid, "pid"),
                net_alias: None,
            },
            cgroup: (!spec.cgroup_parent.is_empty()).then(|| format!("{}/{}", spec.cgroup_parent, spec.pod_id)),
        })
    }

    fn start(&self, spec: &MonitorSpec) -> Result<(PodResources, Box<dyn PendingMonitor>)> {
        let mut resources = self.plan(spec)?;
        let mut w = self.op("start_monitor", &spec.pod_id)?;
        w.next_pid += 2;
        let pid = 1000 + w.next_pid;
        resources.monitor = Some(ProcRef { pid, start_time: 1 });
        resources.init = Some(ProcRef { pid: pid + 1, start_time: 1 });
        w.monitors.insert(spec.pod_id.clone(), false);
        drop(w);
        let pending = FakePending { fakes: self.clone(), pod_id: spec.pod_id.clone(), committed: false };
        Ok((resources, Box::new(pending)))
    }

    fn stop(&self, pod_id: &str, resources: &PodResources) -> Result<()> {
        let mut w = self.op("stop_monitor", pod_id)?;
        w.monitors.remove(pod_id);
        for p in [resources.monitor, resources.init].into_iter().flatten() {
            w.dead.insert(p.pid);
        }
        Ok(())
    }

    fn is_alive(&self, process: &ProcRef) -> bool {
        !self.world().dead.contains(&process.pid)
    }

    fn watch_exit(&self, process: ProcRef, on_exit: Box<dyn FnOnce() + Send>) {
        let mut w = self.world();
        if w.dead.contains(&process.pid) {
            drop(w);
            on_exit();
        } else {
            w.watches.push((process.pid, on_exit));
        }
    }
}
