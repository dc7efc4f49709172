//! ContainerStats and ListContainerStats.

use std::collections::{BTreeMap, HashSet};

use super::model::{ContainerAttributes, ContainerStats, FsUsage};
use super::{ContainerStatsFilter, StatsService, convert};
use crate::container::ContainerFilter;
use crate::container::model::{ContainerRecord, container_name};
use crate::error::Result;
use crate::sandbox::model::PodRecord;
use crate::sandbox::now_ns;
use crate::spec::HostCaps;
use crate::spec::resources::cgroups_path;

/// What container stats need of a pod.
#[derive(Debug, Clone, Default)]
pub(super) struct PodFacts {
    pub metadata: crate::sandbox::model::PodMetadata,
    pub cgroup_parent: String,
}

impl PodFacts {
    pub fn of(r: &PodRecord) -> Self {
        PodFacts { metadata: r.config.metadata.clone(), cgroup_parent: r.config.cgroup_parent.clone() }
    }
}

impl StatsService {
    pub fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        let view = self.containers.status(id)?;
        let pod = self.pod_facts(&view.record.pod_id);
        Ok(self.one_container(&view.record, pod.as_ref()))
    }

    /// Every container the filter selects (exited ones too, with what they still have), served
    /// from memory and a few cgroup files each.
    pub fn list_container_stats(&self, filter: &ContainerStatsFilter) -> Vec<ContainerStats> {
        let views = self.containers.list(&ContainerFilter {
            id: filter.id.clone(),
            pod_id: filter.pod_id.clone(),
            labels: filter.labels.clone(),
            state: None,
        });
        self.forget_gone_containers();
        let mut pods: BTreeMap<String, Option<PodFacts>> = BTreeMap::new();
        views
            .iter()
            .map(|v| {
                let pod = pods.entry(v.record.pod_id.clone()).or_insert_with(|| self.pod_facts(&v.record.pod_id));
                self.one_container(&v.record, pod.as_ref())
            })
            .collect()
    }

    pub(super) fn pod_facts(&self, pod_id: &str) -> Option<PodFacts> {
        let entry = self.containers.sandboxes().pods().find(pod_id).ok().flatten()?;
        Some(entry.read(PodFacts::of))
    }

    pub(super) fn one_container(&self, r: &ContainerRecord, pod: Option<&PodFacts>) -> ContainerStats {
        let attributes = ContainerAttributes {
            id: r.id.clone(),
            pod_id: r.pod_id.clone(),
            metadata: r.config.metadata.clone(),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
            image: r.image_ref.clone(),
            full_name: pod.map(|p| container_name(&r.config.metadata, &p.metadata)).unwrap_or_default(),
            pod_name: pod.map(|p| p.metadata.name.clone()).unwrap_or_default(),
            pod_namespace: pod.map(|p| p.metadata.namespace.clone()).unwrap_or_default(),
            started_at_ns: r.started_at_ns,
        };
        let sample = pod.and_then(|p| self.container_cgroup(&p.cgroup_parent, &r.id)).and_then(|cgroup| {
            self.source.cgroup(&cgroup).unwrap_or_else(|e| {
                // One unreadable cgroup must not fail a List: that container reports less.
                tracing::warn!(container_id = %r.id, cgroup = %cgroup, error = %e, "reading container stats");
                None
            })
        });
        let at = now_ns();
        let writable_layer = self.source.writable_layer(&r.id).map(|l| FsUsage {
            timestamp_ns: l.timestamp_ns,
            mountpoint: l.mountpoint,
            used_bytes: l.bytes,
            inodes_used: l.inodes,
        });
        ContainerStats {
            attributes,
            cpu: sample.and_then(|s| s.cpu).map(|c| convert::cpu(&self.rates, &r.id, &c, at)),
            memory: sample.and_then(|s| s.memory).map(|m| convert::memory(&m, at)),
            swap: sample.and_then(|s| s.swap).map(|s| convert::swap(&s, at)),
            writable_layer,
            sample,
        }
    }

    /// The container's cgroup, computed the way its OCI spec was (spec::resources).
    pub(super) fn container_cgroup(&self, cgroup_parent: &str, container_id: &str) -> Option<String> {
        let host = HostCaps { systemd_cgroup: self.options.systemd_cgroup, ..Default::default() };
        cgroups_path(cgroup_parent, container_id, &host).ok()
    }

    /// Drops the cpu samples and layer measurements of containers that are gone.
    pub(super) fn forget_gone_containers(&self) {
        let live: Vec<String> = self.containers.containers().all().iter().map(|e| e.id()).collect();
        let pods: HashSet<String> =
            self.containers.sandboxes().pods().all().iter().map(|e| super::pod_key(&e.id())).collect();
        let set: HashSet<&str> = live.iter().map(String::as_str).collect();
        self.rates.retain(|k| set.contains(k) || pods.contains(k));
        self.source.retain_layers(&live);
    }
}
