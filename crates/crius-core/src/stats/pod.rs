//! PodSandboxStats and ListPodSandboxStats.

use super::container::PodFacts;
use super::model::{NetworkUsage, PodAttributes, PodStats, ProcessUsage};
use super::{PodStatsFilter, StatsService, convert, pod_key};
use crate::container::ContainerFilter;
use crate::error::Result;
use crate::sandbox::PodFilter;
use crate::sandbox::model::{PodRecord, PodState};
use crate::sandbox::now_ns;

/// The interface CNI gives every pod, which the kubelet reports as the pod's network.
pub const DEFAULT_INTERFACE: &str = "eth0";

impl StatsService {
    /// A pod's stats; a pod that is not ready reports what it still has (its attributes and
    /// containers), not an error.
    pub fn pod_stats(&self, id: &str) -> Result<PodStats> {
        let view = self.containers.sandboxes().status(id)?;
        Ok(self.one_pod(&view.record))
    }

    /// The ready pods the filter selects (as containerd, which skips pods that are not ready).
    pub fn list_pod_stats(&self, filter: &PodStatsFilter) -> Result<Vec<PodStats>> {
        let pods = self.containers.sandboxes().list(&PodFilter {
            id: filter.id.clone(),
            ready: Some(true),
            labels: filter.labels.clone(),
        })?;
        // A kubelet on the CRI stats path (PodAndContainerStatsFromCRI) calls only this one:
        // it too must let go of what removed containers left (cpu samples, layer watches).
        self.forget_gone_containers();
        Ok(pods.iter().map(|v| self.one_pod(&v.record)).collect())
    }

    fn one_pod(&self, r: &PodRecord) -> PodStats {
        let facts = PodFacts::of(r);
        let containers: Vec<_> = self
            .containers
            .list(&ContainerFilter { pod_id: Some(r.id.clone()), ..Default::default() })
            .iter()
            .map(|v| self.one_container(&v.record, Some(&facts)))
            .collect();
        // The pod's cgroup is its cgroup parent (the kubelet's pod cgroup, holding the pod init
        // and every container), as containerd reads it. Without one, the containers' sum.
        let sample = match pod_cgroup(&r.config.cgroup_parent, self.options.systemd_cgroup) {
            Some(cgroup) => self.source.cgroup(&cgroup).unwrap_or_else(|e| {
                tracing::warn!(pod_id = %r.id, cgroup = %cgroup, error = %e, "reading pod stats");
                None
            }),
            None => convert::sum(containers.iter().filter_map(|c| c.sample.as_ref())),
        };
        let at = now_ns();
        let key = pod_key(&r.id);
        PodStats {
            attributes: PodAttributes {
                id: r.id.clone(),
                metadata: r.config.metadata.clone(),
                labels: r.config.labels.clone(),
                annotations: r.config.annotations.clone(),
            },
            cpu: sample.and_then(|s| s.cpu).map(|c| convert::cpu(&self.rates, &key, &c, at)),
            memory: sample.and_then(|s| s.memory).map(|m| convert::memory(&m, at)),
            network: self.pod_network(r),
            process: sample.and_then(|s| s.pids).map(|n| ProcessUsage { timestamp_ns: at, process_count: n }),
            containers,
            sample,
        }
    }

    fn pod_network(&self, r: &PodRecord) -> Option<NetworkUsage> {
        // A host-network pod has no namespace of its own; a stopped pod's pin is gone.
        let netns = r.resources.namespaces.net.as_deref().filter(|_| r.state == PodState::Ready)?;
        let interfaces = match self.source.network(netns, r.resources.init) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(pod_id = %r.id, netns = %netns, error = %e, "reading pod network stats");
                return None;
            }
        };
        let timestamp_ns = now_ns();
        let (default, others): (Vec<_>, Vec<_>) =
            interfaces.into_iter().filter(|i| i.name != "lo").partition(|i| i.name == DEFAULT_INTERFACE);
        Some(NetworkUsage { timestamp_ns, default_interface: default.into_iter().next(), interfaces: others })
    }
}

/// The cgroup of a pod from its cgroup parent: the path itself (cgroupfs), or the parent's
/// last slice (systemd, where parents are slice names). None without a parent.
pub(super) fn pod_cgroup(cgroup_parent: &str, systemd: bool) -> Option<String> {
    let parent = cgroup_parent.trim_end_matches('/');
    if parent.is_empty() {
        return None;
    }
    if systemd {
        return parent.rsplit('/').next().map(str::to_string);
    }
    Some(parent.to_string())
}
