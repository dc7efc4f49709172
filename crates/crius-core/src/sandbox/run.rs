//! RunPodSandbox: intent on disk first, then each resource with its undo, then Ready.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::SandboxService;
use super::files::{render_hosts, render_hosts_with_ips, render_resolv_conf};
use super::mcs::LevelHold;
use super::model::{POD_RECORD_VERSION, PodConfig, PodRecord, PodState};
use super::sysctl;
use super::timeline::Timeline;
use super::validate::validate_pod_config;
use crate::error::{Error, Result};
use crate::events::ContainerEventKind;
use crate::ids::new_id;
use crate::ports::{MonitorSpec, PendingMonitor, SandboxFileSet};
use crate::rollback::Rollback;
use crate::store::PodEntry;

impl SandboxService {
    /// Runs a pod sandbox and returns its id. Any failure undoes every step before it.
    pub fn run(&self, config: PodConfig) -> Result<String> {
        // From the very start, so the timeline covers the whole call (validation is charged to
        // the first step).
        let mut timeline = Timeline::start(self.step_hook.as_ref());
        validate_pod_config(&config)?;
        self.check_runtime_handler(&config.runtime_handler)?;
        let id = new_id()?;
        let name = config.metadata.sandbox_name();

        let reservation = timeline.step("reserve", || self.names.reserve(&name, &id))?;
        let level = self.selinux_level(&config)?;
        let ports = &self.ports;
        // Reads the node's resolv.conf, hosts and hostname: worth a step of its own.
        let (spec, files, planned) = timeline.step("plan", || {
            let spec = self.monitor_spec(&id, &config)?;
            let files = self.file_set(&config)?;
            let planned = ports.monitor.plan(&spec).map_err(|e| e.context("pod sandbox config"))?;
            Ok::<_, Error>((spec, files, planned))
        })?;

        let mut record = PodRecord {
            version: POD_RECORD_VERSION,
            id: id.clone(),
            config,
            created_at_ns: now_ns(),
            state: PodState::Creating,
            resources: planned.clone(),
            timeline: Vec::new(),
            network: None,
            stopping: false,
            selinux_level: level.level().map(String::from),
        };
        let mut rb = Rollback::new();

        // Each undo is pushed before its step runs: teardowns are idempotent, so a step that
        // fails half-way is undone as well.
        rb.push("state record", || ports.pod_state.delete(&id));
        if let Err(e) = timeline.step("state_creating", || ports.pod_state.save_volatile(&record)) {
            return Err(rb.fail(e.context(format!("recording pod sandbox {id}"))));
        }

        rb.push("pod files", || ports.pod_files.remove(&id));
        if let Err(e) = timeline.step("files", || ports.pod_files.create(&id, &files)) {
            return Err(rb.fail(e.context(format!("writing the files of pod sandbox {id}"))));
        }

        if !record.config.namespaces.host_ipc() {
            rb.push("/dev/shm", || ports.pod_files.unmount_shm(&id));
            let shm = self.options.shm_size_bytes;
            if let Err(e) = timeline.step("shm", || ports.pod_files.mount_shm(&id, shm)) {
                return Err(rb.fail(e.context(format!("mounting /dev/shm of pod sandbox {id}"))));
            }
        }

        rb.push("pod namespaces and cgroup", || ports.monitor.stop(&id, &planned));
        let (resources, pending) = match timeline.step("monitor_start", || ports.monitor.start(&spec)) {
            Ok(started) => started,
            Err(e) => return Err(rb.fail(e.context(format!("starting the monitor of pod sandbox {id}")))),
        };
        // Until commit, dropping `pending` makes the monitor undo itself.
        let pending: Arc<Mutex<Option<Box<dyn PendingMonitor>>>> = Arc::new(Mutex::new(Some(pending)));
        {
            let pending = pending.clone();
            let resources = resources.clone();
            let id = id.as_str();
            rb.push("pod monitor", move || {
                drop(take(&pending));
                ports.monitor.stop(id, &resources)
            });
        }

        record.resources = resources;
        if let Err(e) = timeline.step("monitor_recorded", || ports.pod_state.save_volatile(&record)) {
            return Err(rb.fail(e.context(format!("recording the monitor of pod sandbox {id}"))));
        }

        let commit = timeline.step("monitor_commit", || match take(&pending) {
            Some(p) => p.commit(),
            None => Err(Error::internal("committing the pod monitor", "monitor handle already taken")),
        });
        if let Err(e) = commit {
            return Err(rb.fail(e.context(format!("committing the monitor of pod sandbox {id}"))));
        }

        if !record.config.namespaces.host_network() {
            let request = network_request(&record);
            rb.push("pod network", move || ports.network.teardown(&request));
            let request = network_request(&record);
            let status = match timeline.step("network_setup", || ports.network.setup(&request)) {
                Ok(status) => status,
                Err(e) => return Err(rb.fail(e.context(format!("setting up the network of pod sandbox {id}")))),
            };
            record.network = Some(status);
            if let Err(e) = timeline.step("network_recorded", || ports.pod_state.save_volatile(&record)) {
                return Err(rb.fail(e.context(format!("recording the network of pod sandbox {id}"))));
            }
            let written = timeline.step("hosts", || {
                let hostname = self.pod_hostname(&record.config)?;
                let ips = record.network.as_ref().map(|n| n.ips.as_slice()).unwrap_or_default();
                ports.pod_files.write_hosts(&id, &render_hosts_with_ips(ips, &hostname))
            });
            if let Err(e) = written {
                return Err(rb.fail(e.context(format!("writing /etc/hosts of pod sandbox {id}"))));
            }
            let mappings = record.config.port_mappings.clone();
            let ips = record.network.as_ref().map(|n| n.ips.clone()).unwrap_or_default();
            if mappings.iter().any(|m| m.host_port > 0) {
                let undo_mappings = mappings.clone();
                let pod_id = id.as_str();
                rb.push("host ports", move || ports.host_ports.remove(pod_id, &undo_mappings));
                if let Err(e) = timeline.step("host_ports", || ports.host_ports.add(&id, &mappings, &ips)) {
                    return Err(rb.fail(e.context(format!("opening the host ports of pod sandbox {id}"))));
                }
            }
        }

        record.state = PodState::Ready;
        record.timeline = timeline.steps().to_vec();
        if let Err(e) = timeline.step("state_ready", || ports.pod_state.save(&record)) {
            return Err(rb.fail(e.context(format!("recording pod sandbox {id} as ready"))));
        }
        // The durable record cannot hold the duration of its own save: amend it (no flush) so
        // the whole timeline survives a restart.
        record.timeline = timeline.steps().to_vec();
        if let Err(e) = ports.pod_state.amend(&record) {
            tracing::warn!(pod_id = %id, error = %e, "recording the start timeline of the pod sandbox");
        }

        let init = record.resources.init;
        let entry = Arc::new(PodEntry::new(record));
        // Held until CREATED and STARTED are out, so a Stop or Remove of the listed pod cannot
        // send its events first.
        let op = entry.lock_op();
        self.pods.insert(entry.clone());
        reservation.keep();
        level.keep();
        rb.disarm();
        // As containerd: CREATED and STARTED together once the pod is ready, before the exit
        // watch can send its STOPPED.
        self.emit_pod(&entry, ContainerEventKind::Created);
        self.emit_pod(&entry, ContainerEventKind::Started);
        drop(op);
        if let Some(init) = init {
            self.watch_pod_init(entry, init);
        }
        tracing::info!(pod_id = %id, pod = %name, "pod sandbox ready");
        Ok(id)
    }

    /// The pod's SELinux level, held: the one its options give, else one no other pod holds.
    /// None without SELinux, where the options are ignored (as containerd's label.InitLabels
    /// does), which is worth a line at debug level.
    fn selinux_level(&self, config: &PodConfig) -> Result<LevelHold<'_>> {
        let given = config.selinux.as_ref();
        if !self.options.selinux {
            if crate::spec::selinux::asks_for_something(given) {
                tracing::debug!(
                    pod = %config.metadata.sandbox_name(),
                    "SELinux is not enabled on this host: the pod's selinux_options are ignored"
                );
            }
            return Ok(self.levels.guard(None));
        }
        let level = match given.map(|o| o.level.as_str()).filter(|l| !l.is_empty()) {
            Some(level) => {
                self.levels.hold(level);
                level.to_string()
            }
            None => self.levels.pick()?,
        };
        Ok(self.levels.guard(Some(level)))
    }

    fn check_runtime_handler(&self, handler: &str) -> Result<()> {
        if handler.is_empty() || self.options.runtime_handlers.iter().any(|h| h == handler) {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "runtime handler {handler:?} is not configured; configured handlers: {} (add [runtimes.{handler}] to crius.toml)",
            self.options.runtime_handlers.join(", ")
        )))
    }

    fn monitor_spec(&self, id: &str, config: &PodConfig) -> Result<MonitorSpec> {
        let namespaces = config.namespaces.new_namespaces();
        let hostname = if namespaces.uts { Some(self.pod_hostname(config)?) } else { None };
        Ok(MonitorSpec {
            pod_id: id.to_string(),
            namespaces,
            hostname,
            sysctls: config.sysctls.iter().map(|(k, v)| (sysctl::proc_path(k), v.clone())).collect(),
            cgroup_parent: config.cgroup_parent.clone(),
            ipv6_dad: self.options.ipv6_dad,
        })
    }

    fn file_set(&self, config: &PodConfig) -> Result<SandboxFileSet> {
        let files = &self.ports.pod_files;
        let host_network = config.namespaces.host_network();
        let needs_host_resolv = config.dns.as_ref().is_none_or(|d| d.is_empty());
        let host_resolv = if needs_host_resolv { files.host_resolv_conf()? } else { String::new() };
        let host_hosts = if host_network { files.host_hosts()? } else { String::new() };
        Ok(SandboxFileSet {
            hostname: format!("{}\n", self.pod_hostname(config)?),
            hosts: render_hosts(host_network, &host_hosts),
            resolv_conf: render_resolv_conf(config.dns.as_ref(), &host_resolv),
        })
    }

    /// The configured hostname; the node's for a host-network pod or when none is given.
    fn pod_hostname(&self, config: &PodConfig) -> Result<String> {
        if config.namespaces.host_network() || config.hostname.is_empty() {
            self.ports.pod_files.host_hostname()
        } else {
            Ok(config.hostname.clone())
        }
    }
}

/// What CNI is told about a pod (also for DEL, which must match ADD).
pub(crate) fn network_request(record: &PodRecord) -> crate::ports::network::NetworkRequest {
    let md = &record.config.metadata;
    crate::ports::network::NetworkRequest {
        pod_id: record.id.clone(),
        name: md.name.clone(),
        namespace: md.namespace.clone(),
        uid: md.uid.clone(),
        netns_path: record.resources.namespaces.net.clone().unwrap_or_default(),
        annotations: record.config.annotations.clone(),
        port_mappings: record.config.port_mappings.clone(),
        cgroup_parent: record.config.cgroup_parent.clone(),
    }
}

fn take(pending: &Mutex<Option<Box<dyn PendingMonitor>>>) -> Option<Box<dyn PendingMonitor>> {
    pending.lock().unwrap_or_else(|p| p.into_inner()).take()
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
