//! Stats: ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats and the
//! cAdvisor-named metrics of ListPodSandboxMetrics, read through the [`StatsSource`] port and
//! answered without walking any tree (the writable layers' usage is measured in the background).

pub mod cpu;
pub mod metrics;
pub mod model;

mod container;
mod convert;
mod pod;

#[cfg(any(test, feature = "fakes"))]
pub mod fake;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use model::*;

use crate::container::ContainerService;
use crate::ports::stats::StatsSource;

#[derive(Debug, Clone, Default)]
pub struct StatsOptions {
    /// The systemd cgroup driver names cgroups "slice:prefix:name" (see spec::resources).
    pub systemd_cgroup: bool,
}

/// ListContainerStats's filter (CRI's ContainerStatsFilter).
#[derive(Debug, Clone, Default)]
pub struct ContainerStatsFilter {
    /// An id or a unique prefix of one.
    pub id: Option<String>,
    pub pod_id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// ListPodSandboxStats's filter.
#[derive(Debug, Clone, Default)]
pub struct PodStatsFilter {
    pub id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

pub struct StatsService {
    containers: Arc<ContainerService>,
    source: Arc<dyn StatsSource>,
    options: StatsOptions,
    rates: cpu::CpuRates,
}

impl StatsService {
    pub fn new(containers: Arc<ContainerService>, source: Arc<dyn StatsSource>, options: StatsOptions) -> Self {
        StatsService { containers, source, options, rates: cpu::CpuRates::default() }
    }

    pub fn containers(&self) -> &Arc<ContainerService> {
        &self.containers
    }
}

/// The key of a pod's cpu samples, apart from its containers' (ids never contain '/').
fn pod_key(pod_id: &str) -> String {
    format!("pod/{pod_id}")
}
