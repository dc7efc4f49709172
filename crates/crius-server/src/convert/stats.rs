//! Stats and metrics: domain usage -> CRI messages, CRI filters -> domain filters.

use std::collections::HashMap;

use crius_core::ports::stats::InterfaceSample;
use crius_core::stats::metrics::{MetricDescriptor, MetricKind, MetricValue, PodMetrics};
use crius_core::stats::{
    ContainerStats, ContainerStatsFilter, CpuUsage, FsUsage, MemoryUsage, NetworkUsage, PodStats, PodStatsFilter,
    ProcessUsage, SwapUsage,
};
use k8s_cri::v1 as cri;

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn u64v(value: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value })
}

fn map(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn container_filter(f: Option<cri::ContainerStatsFilter>) -> ContainerStatsFilter {
    let f = f.unwrap_or_default();
    ContainerStatsFilter {
        id: non_empty(f.id),
        pod_id: non_empty(f.pod_sandbox_id),
        labels: f.label_selector.into_iter().collect(),
    }
}

pub fn pod_filter(f: Option<cri::PodSandboxStatsFilter>) -> PodStatsFilter {
    let f = f.unwrap_or_default();
    PodStatsFilter { id: non_empty(f.id), labels: f.label_selector.into_iter().collect() }
}

fn cpu(c: &CpuUsage) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: c.timestamp_ns,
        usage_core_nano_seconds: u64v(c.usage_core_ns),
        usage_nano_cores: c.usage_nano_cores.and_then(u64v),
    }
}

fn memory(m: &MemoryUsage) -> cri::MemoryUsage {
    cri::MemoryUsage {
        timestamp: m.timestamp_ns,
        working_set_bytes: u64v(m.working_set_bytes),
        available_bytes: m.available_bytes.and_then(u64v),
        usage_bytes: u64v(m.usage_bytes),
        rss_bytes: u64v(m.rss_bytes),
        page_faults: u64v(m.page_faults),
        major_page_faults: u64v(m.major_page_faults),
    }
}

fn swap(s: &SwapUsage) -> cri::SwapUsage {
    cri::SwapUsage {
        timestamp: s.timestamp_ns,
        swap_available_bytes: s.available_bytes.and_then(u64v),
        swap_usage_bytes: u64v(s.usage_bytes),
    }
}

fn fs(f: &FsUsage) -> cri::FilesystemUsage {
    cri::FilesystemUsage {
        timestamp: f.timestamp_ns,
        fs_id: Some(cri::FilesystemIdentifier { mountpoint: f.mountpoint.clone() }),
        used_bytes: u64v(f.used_bytes),
        inodes_used: u64v(f.inodes_used),
    }
}

fn interface(i: &InterfaceSample) -> cri::NetworkInterfaceUsage {
    cri::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: u64v(i.rx_bytes),
        rx_errors: u64v(i.rx_errors),
        tx_bytes: u64v(i.tx_bytes),
        tx_errors: u64v(i.tx_errors),
    }
}

fn network(n: &NetworkUsage) -> cri::NetworkUsage {
    cri::NetworkUsage {
        timestamp: n.timestamp_ns,
        default_interface: n.default_interface.as_ref().map(interface),
        interfaces: n.interfaces.iter().map(interface).collect(),
    }
}

fn process(p: &ProcessUsage) -> cri::ProcessUsage {
    cri::ProcessUsage { timestamp: p.timestamp_ns, process_count: u64v(p.process_count) }
}

pub fn container_stats(s: &ContainerStats) -> cri::ContainerStats {
    let a = &s.attributes;
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: a.id.clone(),
            metadata: Some(cri::ContainerMetadata { name: a.metadata.name.clone(), attempt: a.metadata.attempt }),
            labels: map(&a.labels),
            annotations: map(&a.annotations),
        }),
        cpu: s.cpu.as_ref().map(cpu),
        memory: s.memory.as_ref().map(memory),
        writable_layer: s.writable_layer.as_ref().map(fs),
        swap: s.swap.as_ref().map(swap),
    }
}

pub fn pod_stats(s: &PodStats) -> cri::PodSandboxStats {
    let a = &s.attributes;
    let md = &a.metadata;
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: a.id.clone(),
            metadata: Some(cri::PodSandboxMetadata {
                name: md.name.clone(),
                uid: md.uid.clone(),
                namespace: md.namespace.clone(),
                attempt: md.attempt,
            }),
            labels: map(&a.labels),
            annotations: map(&a.annotations),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: s.cpu.as_ref().map(cpu),
            memory: s.memory.as_ref().map(memory),
            network: s.network.as_ref().map(network),
            process: s.process.as_ref().map(process),
            containers: s.containers.iter().map(container_stats).collect(),
        }),
        windows: None,
    }
}

pub fn descriptor(d: &MetricDescriptor) -> cri::MetricDescriptor {
    cri::MetricDescriptor {
        name: d.name.to_string(),
        help: d.help.to_string(),
        label_keys: d.label_keys.iter().map(|k| k.to_string()).collect(),
    }
}

fn metric(m: &MetricValue) -> cri::Metric {
    let kind = match m.kind {
        MetricKind::Counter => cri::MetricType::Counter,
        MetricKind::Gauge => cri::MetricType::Gauge,
    };
    cri::Metric {
        name: m.name.to_string(),
        // Gathered live, so no timestamp (the CRI's rule for live values).
        timestamp: 0,
        metric_type: kind as i32,
        label_values: m.label_values.clone(),
        value: u64v(m.value),
    }
}

pub fn pod_metrics(p: &PodMetrics) -> cri::PodSandboxMetrics {
    cri::PodSandboxMetrics {
        pod_sandbox_id: p.pod_id.clone(),
        metrics: p.metrics.iter().map(metric).collect(),
        container_metrics: p
            .containers
            .iter()
            .map(|(id, values)| cri::ContainerMetrics {
                container_id: id.clone(),
                metrics: values.iter().map(metric).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_treat_empty_as_unset() {
        let f = container_filter(Some(cri::ContainerStatsFilter {
            id: String::new(),
            pod_sandbox_id: "p".into(),
            label_selector: HashMap::from([("a".into(), "b".into())]),
        }));
        assert_eq!((f.id, f.pod_id.as_deref(), f.labels.len()), (None, Some("p"), 1));
        let f = pod_filter(None);
        assert!(f.id.is_none() && f.labels.is_empty());
    }

    #[test]
    fn missing_values_stay_unset() {
        let s = ContainerStats {
            cpu: Some(CpuUsage { timestamp_ns: 5, usage_core_ns: 9, usage_nano_cores: None }),
            memory: Some(MemoryUsage { available_bytes: None, working_set_bytes: 3, ..Default::default() }),
            ..Default::default()
        };
        let c = container_stats(&s);
        let cpu = c.cpu.unwrap();
        assert_eq!((cpu.timestamp, cpu.usage_core_nano_seconds.unwrap().value, cpu.usage_nano_cores), (5, 9, None));
        let m = c.memory.unwrap();
        assert_eq!((m.available_bytes, m.working_set_bytes.unwrap().value), (None, 3));
        assert!(c.swap.is_none() && c.writable_layer.is_none());
    }

    #[test]
    fn metric_types() {
        let m = metric(&MetricValue {
            name: "x_total",
            kind: MetricKind::Counter,
            label_values: vec!["a".into()],
            value: 4,
        });
        assert_eq!(m.metric_type, cri::MetricType::Counter as i32);
        assert_eq!(m.value.unwrap().value, 4);
    }
}
