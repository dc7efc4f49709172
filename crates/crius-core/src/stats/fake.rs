//! A [`StatsSource`] whose readings the test sets, with one-shot failures.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ports::stats::{CgroupSample, InterfaceSample, LayerUsage, StatsSource};

#[derive(Default)]
pub struct FakeStatsSource {
    cgroups: Mutex<HashMap<String, CgroupSample>>,
    networks: Mutex<HashMap<String, Vec<InterfaceSample>>>,
    layers: Mutex<HashMap<String, LayerUsage>>,
    /// Cgroups whose next read fails.
    fail_next: Mutex<BTreeSet<String>>,
    /// Every cgroup read, in order.
    pub reads: Mutex<Vec<String>>,
    pub retained: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeStatsSource {
    pub fn set_cgroup(&self, cgroup: &str, sample: CgroupSample) {
        lock(&self.cgroups).insert(cgroup.to_string(), sample);
    }
    pub fn set_network(&self, netns: &str, interfaces: Vec<InterfaceSample>) {
        lock(&self.networks).insert(netns.to_string(), interfaces);
    }
    pub fn set_layer(&self, container_id: &str, usage: LayerUsage) {
        lock(&self.layers).insert(container_id.to_string(), usage);
    }
    pub fn fail_next_read(&self, cgroup: &str) {
        lock(&self.fail_next).insert(cgroup.to_string());
    }
    pub fn reads(&self) -> Vec<String> {
        lock(&self.reads).clone()
    }
}

impl StatsSource for FakeStatsSource {
    fn cgroup(&self, cgroup: &str) -> Result<Option<CgroupSample>> {
        lock(&self.reads).push(cgroup.to_string());
        if lock(&self.fail_next).remove(cgroup) {
            return Err(Error::internal(format!("reading cgroup {cgroup}"), "injected failure"));
        }
        Ok(lock(&self.cgroups).get(cgroup).copied())
    }
    fn network(
        &self,
        netns_path: &str,
        _holder: Option<crate::sandbox::model::ProcRef>,
    ) -> Result<Vec<InterfaceSample>> {
        lock(&self.networks)
            .get(netns_path)
            .cloned()
            .ok_or_else(|| Error::internal(format!("opening {netns_path}"), "no such namespace"))
    }
    fn writable_layer(&self, container_id: &str) -> Option<LayerUsage> {
        lock(&self.layers).get(container_id).cloned()
    }
    fn retain_layers(&self, live_container_ids: &[String]) {
        *lock(&self.retained) = live_container_ids.to_vec();
    }
}
