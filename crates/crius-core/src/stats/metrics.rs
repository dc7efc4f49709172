//! ListMetricDescriptors and ListPodSandboxMetrics: the cAdvisor metrics the kubelet serves on
//! /metrics/cadvisor when it takes them from the runtime (PodAndContainerStatsFromCRI), with
//! cAdvisor's names, types and label keys, for what crius can read.
//!
//! CRI metric values are integers: the `_seconds_total` counters are whole seconds (as CRI-O
//! reports them), everything else is exact.

use std::collections::BTreeMap;

use super::model::{ContainerStats, PodStats};
use super::{PodStatsFilter, StatsService};
use crate::error::Result;
use crate::ports::stats::{CgroupSample, InterfaceSample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// cAdvisor's labels of every container series, in its (sorted) order.
const BASE_LABELS: &[&str] = &["container", "id", "image", "name", "namespace", "pod"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDescriptor {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// Sorted; the values of each metric come in this order.
    pub label_keys: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricValue {
    pub name: &'static str,
    pub kind: MetricKind,
    pub label_values: Vec<String>,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMetrics {
    pub pod_id: String,
    /// Pod-level series (container=""): the pod's cgroup and its network.
    pub metrics: Vec<MetricValue>,
    /// (container id, its series).
    pub containers: Vec<(String, Vec<MetricValue>)>,
}

/// One metric: name, help, type and the labels beyond the base ones.
struct Spec {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    extra: &'static [&'static str],
}

const fn spec(name: &'static str, help: &'static str, kind: MetricKind, extra: &'static [&'static str]) -> Spec {
    Spec { name, help, kind, extra }
}

use MetricKind::{Counter, Gauge};

const SPECS: &[Spec] = &[
    spec("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", Counter, &["cpu"]),
    spec("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", Counter, &[]),
    spec("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", Counter, &[]),
    spec("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", Counter, &[]),
    spec(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        Counter,
        &[],
    ),
    spec(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        Gauge,
        &[],
    ),
    spec("container_memory_working_set_bytes", "Current working set in bytes.", Gauge, &[]),
    spec("container_memory_rss", "Size of RSS in bytes.", Gauge, &[]),
    spec("container_memory_cache", "Number of bytes of page cache memory.", Gauge, &[]),
    spec("container_memory_mapped_file", "Size of memory mapped files in bytes.", Gauge, &[]),
    spec("container_memory_swap", "Container swap usage in bytes.", Gauge, &[]),
    spec("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", Gauge, &[]),
    spec("container_memory_failcnt", "Number of memory usage hits limits", Counter, &[]),
    spec(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        Counter,
        &["failure_type", "scope"],
    ),
    spec("container_spec_memory_limit_bytes", "Memory limit for the container.", Gauge, &[]),
    spec("container_processes", "Number of processes running inside the container.", Gauge, &[]),
    spec("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", Gauge, &[]),
    spec(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        Gauge,
        &["device"],
    ),
    spec("container_network_receive_bytes_total", "Cumulative count of bytes received", Counter, &["interface"]),
    spec("container_network_receive_packets_total", "Cumulative count of packets received", Counter, &["interface"]),
    spec(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        Counter,
        &["interface"],
    ),
    spec(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        Counter,
        &["interface"],
    ),
    spec("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", Counter, &["interface"]),
    spec(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        Counter,
        &["interface"],
    ),
    spec(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        Counter,
        &["interface"],
    ),
    spec(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        Counter,
        &["interface"],
    ),
];

fn find(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

fn label_keys(s: &Spec) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = BASE_LABELS.iter().chain(s.extra).copied().collect();
    keys.sort_unstable();
    keys
}

/// Every metric ListPodSandboxMetrics reports.
pub fn descriptors() -> Vec<MetricDescriptor> {
    SPECS
        .iter()
        .map(|s| MetricDescriptor { name: s.name, help: s.help, kind: s.kind, label_keys: label_keys(s) })
        .collect()
}

impl StatsService {
    /// The metrics of every ready pod and its containers.
    pub fn pod_metrics(&self) -> Result<Vec<PodMetrics>> {
        Ok(self.list_pod_stats(&PodStatsFilter::default())?.iter().map(pod_metrics).collect())
    }
}

/// Collects the series of one object under its base labels.
struct Series {
    base: BTreeMap<&'static str, String>,
    out: Vec<MetricValue>,
}

impl Series {
    fn new(container: &str, id: &str, image: &str, name: &str, namespace: &str, pod: &str) -> Self {
        let base = BTreeMap::from([
            ("container", container.to_string()),
            ("id", id.to_string()),
            ("image", image.to_string()),
            ("name", name.to_string()),
            ("namespace", namespace.to_string()),
            ("pod", pod.to_string()),
        ]);
        Series { base, out: Vec::new() }
    }

    fn push(&mut self, name: &'static str, extra: &[(&'static str, &str)], value: u64) {
        let Some(s) = find(name) else { return };
        let label_values = label_keys(s)
            .iter()
            .map(|k| {
                extra
                    .iter()
                    .find(|(ek, _)| ek == k)
                    .map(|(_, v)| v.to_string())
                    .or_else(|| self.base.get(k).cloned())
                    .unwrap_or_default()
            })
            .collect();
        self.out.push(MetricValue { name: s.name, kind: s.kind, label_values, value });
    }

    fn cgroup(&mut self, sample: &CgroupSample) {
        const NS: u64 = 1_000_000_000;
        if let Some(c) = &sample.cpu {
            self.push("container_cpu_usage_seconds_total", &[("cpu", "total")], c.usage_ns / NS);
            if let Some(u) = c.user_ns {
                self.push("container_cpu_user_seconds_total", &[], u / NS);
            }
            if let Some(s) = c.system_ns {
                self.push("container_cpu_system_seconds_total", &[], s / NS);
            }
            if let Some(p) = c.throttled_periods {
                self.push("container_cpu_cfs_throttled_periods_total", &[], p);
            }
            if let Some(t) = c.throttled_ns {
                self.push("container_cpu_cfs_throttled_seconds_total", &[], t / NS);
            }
        }
        if let Some(m) = &sample.memory {
            self.push("container_memory_usage_bytes", &[], m.usage_bytes);
            self.push("container_memory_working_set_bytes", &[], m.usage_bytes.saturating_sub(m.inactive_file_bytes));
            self.push("container_memory_rss", &[], m.rss_bytes);
            self.push("container_memory_cache", &[], m.cache_bytes);
            self.push("container_memory_mapped_file", &[], m.mapped_file_bytes);
            if let Some(max) = m.max_usage_bytes {
                self.push("container_memory_max_usage_bytes", &[], max);
            }
            if let Some(f) = m.fail_count {
                self.push("container_memory_failcnt", &[], f);
            }
            for (kind, v) in [("pgfault", m.page_faults), ("pgmajfault", m.major_page_faults)] {
                self.push("container_memory_failures_total", &[("failure_type", kind), ("scope", "container")], v);
            }
            // cAdvisor reports an unlimited container as 0.
            self.push("container_spec_memory_limit_bytes", &[], m.limit_bytes.unwrap_or(0));
        }
        if let Some(s) = &sample.swap {
            self.push("container_memory_swap", &[], s.usage_bytes);
        }
        if let Some(p) = sample.pids {
            self.push("container_processes", &[], p);
        }
    }

    fn interface(&mut self, i: &InterfaceSample) {
        let l = [("interface", i.name.as_str())];
        self.push("container_network_receive_bytes_total", &l, i.rx_bytes);
        self.push("container_network_receive_packets_total", &l, i.rx_packets);
        self.push("container_network_receive_packets_dropped_total", &l, i.rx_dropped);
        self.push("container_network_receive_errors_total", &l, i.rx_errors);
        self.push("container_network_transmit_bytes_total", &l, i.tx_bytes);
        self.push("container_network_transmit_packets_total", &l, i.tx_packets);
        self.push("container_network_transmit_packets_dropped_total", &l, i.tx_dropped);
        self.push("container_network_transmit_errors_total", &l, i.tx_errors);
    }
}

pub fn pod_metrics(p: &PodStats) -> PodMetrics {
    let md = &p.attributes.metadata;
    // The pod-level series, like cAdvisor's for the pod cgroup: no container name, no image.
    let mut pod = Series::new("", &p.attributes.id, "", "", &md.namespace, &md.name);
    if let Some(sample) = &p.sample {
        pod.cgroup(sample);
    }
    if let Some(net) = &p.network {
        for i in net.default_interface.iter().chain(&net.interfaces) {
            pod.interface(i);
        }
    }
    PodMetrics {
        pod_id: p.attributes.id.clone(),
        metrics: pod.out,
        containers: p.containers.iter().map(|c| (c.attributes.id.clone(), container_metrics(c))).collect(),
    }
}

fn container_metrics(c: &ContainerStats) -> Vec<MetricValue> {
    let a = &c.attributes;
    let mut s = Series::new(&a.metadata.name, &a.id, &a.image, &a.full_name, &a.pod_namespace, &a.pod_name);
    if let Some(sample) = &c.sample {
        s.cgroup(sample);
    }
    if a.started_at_ns > 0 {
        s.push("container_start_time_seconds", &[], u64::try_from(a.started_at_ns / 1_000_000_000).unwrap_or(0));
    }
    if let Some(fs) = &c.writable_layer {
        s.push("container_fs_usage_bytes", &[("device", fs.mountpoint.as_str())], fs.used_bytes);
    }
    s.out
}
