//! The stats service against fakes: cpu rates, working set, filters, pods with and without a
//! cgroup parent, network, created and exited containers, metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cpu::{CpuRates, MIN_WINDOW_NS, nano_cores};
use super::fake::FakeStatsSource;
use super::metrics::{MetricKind, descriptors, pod_metrics};
use super::{ContainerStatsFilter, PodStatsFilter, StatsOptions, StatsService};
use crate::container::model::{ContainerConfig, ContainerMetadata};
use crate::container::{ContainerOptions, ContainerService};
use crate::image::ImageConfigInfo;
use crate::ports::container::RuntimeHandler;
use crate::ports::fake::Fakes;
use crate::ports::fake_container::ContainerFakes;
use crate::ports::stats::{CgroupSample, CpuSample, InterfaceSample, LayerUsage, MemorySample, SwapSample};
use crate::sandbox::model::{PodConfig, PodMetadata};
use crate::sandbox::{SandboxOptions, SandboxService};

const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";
const SEC: i64 = 1_000_000_000;

struct Env {
    _pods: Fakes,
    _fakes: ContainerFakes,
    containers: Arc<ContainerService>,
    source: Arc<FakeStatsSource>,
    stats: StatsService,
}

fn env() -> Env {
    let pods = Fakes::default();
    let fakes = ContainerFakes::default();
    fakes.add_image(IMAGE, ImageConfigInfo { cmd: vec!["sh".into()], ..Default::default() });
    let sandboxes = Arc::new(SandboxService::new(pods.ports(), SandboxOptions::default()));
    let options = ContainerOptions {
        runtimes: BTreeMap::from([(
            "runc".to_string(),
            RuntimeHandler {
                name: "runc".into(),
                binary: "runc".into(),
                root: "/run/crius/runc".into(),
                ..Default::default()
            },
        )]),
        default_runtime: "runc".into(),
        host: Default::default(),
    };
    let containers = ContainerService::new_shared(fakes.ports(), sandboxes, options);
    let source = Arc::new(FakeStatsSource::default());
    let stats = StatsService::new(containers.clone(), source.clone(), StatsOptions::default());
    Env { _pods: pods, _fakes: fakes, containers, source, stats }
}

fn pod(e: &Env, name: &str, cgroup_parent: &str) -> String {
    let config = PodConfig {
        metadata: PodMetadata { name: name.into(), uid: format!("uid-{name}"), namespace: "ns".into(), attempt: 0 },
        hostname: name.into(),
        cgroup_parent: cgroup_parent.into(),
        labels: BTreeMap::from([("pod".into(), name.into())]),
        ..Default::default()
    };
    e.containers.sandboxes().run(config).unwrap()
}

fn container(e: &Env, pod_id: &str, name: &str) -> String {
    let config = ContainerConfig {
        metadata: ContainerMetadata { name: name.into(), attempt: 0 },
        image: IMAGE.into(),
        labels: BTreeMap::from([("app".into(), name.into())]),
        ..Default::default()
    };
    e.containers.create(pod_id, config).unwrap()
}

fn sample(cpu_ns: u64, usage: u64, inactive: u64, limit: Option<u64>) -> CgroupSample {
    CgroupSample {
        cpu: Some(CpuSample { usage_ns: cpu_ns, user_ns: Some(cpu_ns / 2), ..Default::default() }),
        memory: Some(MemorySample {
            usage_bytes: usage,
            inactive_file_bytes: inactive,
            limit_bytes: limit,
            rss_bytes: usage / 2,
            page_faults: 10,
            major_page_faults: 1,
            ..Default::default()
        }),
        swap: Some(SwapSample { usage_bytes: 5, limit_bytes: Some(100) }),
        pids: Some(3),
    }
}

#[test]
fn nano_cores_from_two_samples() {
    let rates = CpuRates::default();
    assert_eq!(rates.observe("c", 1_000, 10 * SEC), None, "one sample has no rate");
    // One full core for two seconds.
    assert_eq!(rates.observe("c", 1_000 + 2 * SEC as u64, 12 * SEC), Some(1_000_000_000));
    // A quarter core over the next four.
    assert_eq!(rates.observe("c", 1_000 + 3 * SEC as u64, 16 * SEC), Some(250_000_000));
    // A second caller within the minimum window gets the last rate; the baseline stays.
    assert_eq!(rates.observe("c", 1_000 + 3 * SEC as u64 + 10, 16 * SEC + 1000), Some(250_000_000));
    assert_eq!(rates.observe("c", 1_000 + 5 * SEC as u64, 16 * SEC + MIN_WINDOW_NS * 2), Some(1_000_000_000));
    // Keys are independent.
    assert_eq!(rates.observe("other", 5, 16 * SEC), None);
}

#[test]
fn a_counter_that_goes_backwards_restarts_the_rate() {
    let rates = CpuRates::default();
    rates.observe("c", u64::MAX - 10, SEC);
    // Wrapped (or the cgroup was made anew): no huge or negative rate, a new baseline.
    assert_eq!(rates.observe("c", 5, 3 * SEC), None);
    assert_eq!(rates.observe("c", 5 + SEC as u64, 4 * SEC), Some(1_000_000_000));
    // A clock that went backwards gives the last rate, not a division by a negative window.
    assert_eq!(rates.observe("c", 10 + SEC as u64, 2 * SEC), Some(1_000_000_000));
}

#[test]
fn nano_cores_saturates() {
    assert_eq!(nano_cores(u64::MAX, 1), u64::MAX);
    assert_eq!(nano_cores(500, 0), 500_000_000_000, "a zero window is taken as 1 ns");
}

#[test]
fn rates_forget_gone_objects() {
    let rates = CpuRates::default();
    rates.observe("a", 1, 1);
    rates.observe("b", 1, 1);
    rates.retain(|k| k == "a");
    assert_eq!(rates.len(), 1);
}

#[test]
fn container_stats_working_set_available_and_rate() {
    let e = env();
    let p = pod(&e, "web", "/kubepods/pod1");
    let c = container(&e, &p, "app");
    let cgroup = format!("/kubepods/pod1/{c}");
    e.source.set_cgroup(&cgroup, sample(SEC as u64, 1000, 300, Some(4000)));
    e.source
        .set_layer(&c, LayerUsage { bytes: 4096, inodes: 7, timestamp_ns: 42, mountpoint: "/var/lib/crius".into() });

    let s = e.stats.container_stats(&c[..8]).unwrap();
    assert_eq!(s.attributes.id, c);
    assert_eq!(s.attributes.metadata.name, "app");
    assert_eq!(s.attributes.pod_name, "web");
    assert_eq!(s.attributes.full_name, "app_web_ns_uid-web_0");
    let cpu = s.cpu.unwrap();
    assert_eq!((cpu.usage_core_ns, cpu.usage_nano_cores), (SEC as u64, None));
    let m = s.memory.unwrap();
    assert_eq!((m.usage_bytes, m.working_set_bytes, m.available_bytes), (1000, 700, Some(3300)));
    assert_eq!((m.rss_bytes, m.page_faults, m.major_page_faults), (500, 10, 1));
    let swap = s.swap.unwrap();
    assert_eq!((swap.usage_bytes, swap.available_bytes), (5, Some(95)));
    let fs = s.writable_layer.unwrap();
    assert_eq!((fs.used_bytes, fs.inodes_used, fs.timestamp_ns), (4096, 7, 42));
    assert_eq!(e.source.reads(), [cgroup]);
}

#[test]
fn unlimited_memory_has_no_available_bytes() {
    let e = env();
    let p = pod(&e, "web", "");
    let c = container(&e, &p, "app");
    // No cgroup parent: the container's cgroup is /crius/<id>.
    e.source.set_cgroup(&format!("/crius/{c}"), sample(1, 100, 200, None));
    let m = e.stats.container_stats(&c).unwrap().memory.unwrap();
    assert_eq!((m.working_set_bytes, m.available_bytes), (0, None), "inactive_file above usage saturates");
}

#[test]
fn a_container_without_a_cgroup_reports_what_it_has() {
    let e = env();
    let p = pod(&e, "web", "/k");
    let c = container(&e, &p, "app");
    let s = e.stats.container_stats(&c).unwrap();
    assert_eq!((s.cpu, s.memory, s.swap, s.writable_layer), (None, None, None, None));
    assert_eq!(s.attributes.id, c);
    // A failing read is no error either, and the next read works again.
    e.source.set_cgroup(&format!("/k/{c}"), sample(1, 1, 0, None));
    e.source.fail_next_read(&format!("/k/{c}"));
    assert!(e.stats.container_stats(&c).unwrap().cpu.is_none());
    assert!(e.stats.container_stats(&c).unwrap().cpu.is_some());
    assert_eq!(e.stats.container_stats("nope").unwrap_err().kind(), crate::ErrorKind::NotFound);
}

#[test]
fn list_filters_by_id_pod_and_labels() {
    let e = env();
    let p1 = pod(&e, "one", "/k/p1");
    let p2 = pod(&e, "two", "/k/p2");
    let a = container(&e, &p1, "a");
    let b = container(&e, &p1, "b");
    let c = container(&e, &p2, "c");
    let ids = |f: ContainerStatsFilter| {
        let mut v: Vec<String> = e.stats.list_container_stats(&f).into_iter().map(|s| s.attributes.id).collect();
        v.sort();
        v
    };
    let mut all = vec![a.clone(), b.clone(), c.clone()];
    all.sort();
    assert_eq!(ids(ContainerStatsFilter::default()), all);
    assert_eq!(ids(ContainerStatsFilter { id: Some(a[..10].to_string()), ..Default::default() }), vec![a.clone()]);
    let mut p1_ids = vec![a.clone(), b.clone()];
    p1_ids.sort();
    assert_eq!(ids(ContainerStatsFilter { pod_id: Some(p1.clone()), ..Default::default() }), p1_ids);
    let labels = BTreeMap::from([("app".to_string(), "c".to_string())]);
    assert_eq!(ids(ContainerStatsFilter { labels: labels.clone(), ..Default::default() }), vec![c.clone()]);
    // Filters combine with AND.
    assert!(ids(ContainerStatsFilter { pod_id: Some(p1), labels, ..Default::default() }).is_empty());
    assert!(ids(ContainerStatsFilter { id: Some("nope".into()), ..Default::default() }).is_empty());
    assert!(ids(ContainerStatsFilter { pod_id: Some("nope".into()), ..Default::default() }).is_empty());
    // A List tells the source which containers still exist.
    assert_eq!(e.source.retained.lock().unwrap().len(), 3);
}

#[test]
fn pod_with_a_cgroup_parent_reads_it_and_its_network() {
    let e = env();
    let p = pod(&e, "web", "/kubepods/podA/");
    let c = container(&e, &p, "app");
    e.source.set_cgroup("/kubepods/podA", sample(7 * SEC as u64, 9000, 1000, Some(10_000)));
    e.source.set_cgroup(&format!("/kubepods/podA/{c}"), sample(SEC as u64, 100, 0, None));
    let netns = format!("/run/crius/ns/net/{p}");
    let iface = |name: &str, rx: u64| InterfaceSample {
        name: name.into(),
        rx_bytes: rx,
        tx_bytes: rx * 2,
        ..Default::default()
    };
    e.source.set_network(&netns, vec![iface("lo", 1), iface("eth0", 100), iface("net1", 5)]);

    let s = e.stats.pod_stats(&p).unwrap();
    assert_eq!(s.attributes.metadata.name, "web");
    assert_eq!(s.cpu.unwrap().usage_core_ns, 7 * SEC as u64);
    assert_eq!(s.memory.unwrap().working_set_bytes, 8000);
    assert_eq!(s.process.unwrap().process_count, 3);
    let net = s.network.unwrap();
    assert_eq!(net.default_interface.unwrap().rx_bytes, 100);
    assert_eq!(net.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["net1"], "lo is left out");
    assert_eq!(s.containers.len(), 1);
    assert_eq!(s.containers[0].memory.as_ref().unwrap().usage_bytes, 100);

    let listed = e.stats.list_pod_stats(&PodStatsFilter::default()).unwrap();
    assert_eq!(listed.len(), 1);
    let by_label = PodStatsFilter { labels: BTreeMap::from([("pod".into(), "other".into())]), ..Default::default() };
    assert!(e.stats.list_pod_stats(&by_label).unwrap().is_empty());
}

#[test]
fn pod_without_a_cgroup_parent_sums_its_containers() {
    let e = env();
    let p = pod(&e, "web", "");
    let a = container(&e, &p, "a");
    let b = container(&e, &p, "b");
    e.source.set_cgroup(&format!("/crius/{a}"), sample(SEC as u64, 100, 10, Some(1000)));
    e.source.set_cgroup(&format!("/crius/{b}"), sample(2 * SEC as u64, 200, 20, Some(1000)));
    let s = e.stats.pod_stats(&p).unwrap();
    assert_eq!(s.cpu.unwrap().usage_core_ns, 3 * SEC as u64);
    let m = s.memory.unwrap();
    assert_eq!((m.usage_bytes, m.working_set_bytes, m.available_bytes), (300, 270, None));
    assert_eq!(s.process.unwrap().process_count, 6);
    // The fake netns is not set: no network, and no error.
    assert!(s.network.is_none());
}

#[test]
fn stopped_pods_are_not_listed_but_answer_status() {
    let e = env();
    let p = pod(&e, "web", "/k/p");
    e.containers.sandboxes().stop(&p).unwrap();
    assert!(e.stats.list_pod_stats(&PodStatsFilter::default()).unwrap().is_empty());
    let s = e.stats.pod_stats(&p).unwrap();
    assert!(s.network.is_none() && s.cpu.is_none());
}

#[test]
fn metric_descriptors_have_cadvisor_names_and_sorted_labels() {
    let d = descriptors();
    for name in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_usage_bytes",
        "container_memory_rss",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
    ] {
        assert!(d.iter().any(|m| m.name == name), "{name} missing");
    }
    for m in &d {
        let mut sorted = m.label_keys.clone();
        sorted.sort_unstable();
        assert_eq!(m.label_keys, sorted, "{}", m.name);
        assert!(m.label_keys.contains(&"pod") && m.label_keys.contains(&"namespace"), "{}", m.name);
        assert_eq!(m.kind == MetricKind::Counter, m.name.ends_with("_total") || m.name == "container_memory_failcnt");
    }
}

#[test]
fn pod_metrics_carry_labels_in_descriptor_order() {
    let e = env();
    let p = pod(&e, "web", "/k/p");
    let c = container(&e, &p, "app");
    e.source.set_cgroup("/k/p", sample(3 * SEC as u64 + 5, 100, 0, None));
    e.source.set_cgroup(&format!("/k/p/{c}"), sample(2 * SEC as u64, 100, 0, None));
    e.source.set_network(
        &format!("/run/crius/ns/net/{p}"),
        vec![InterfaceSample { name: "eth0".into(), rx_bytes: 77, ..Default::default() }],
    );
    let all = e.stats.pod_metrics().unwrap();
    assert_eq!(all.len(), 1);
    let m = pod_metrics(&e.stats.pod_stats(&p).unwrap());
    let d = descriptors();
    let keys = |name: &str| d.iter().find(|x| x.name == name).unwrap().label_keys.clone();
    let get =
        |values: &[super::metrics::MetricValue], name: &str| values.iter().find(|v| v.name == name).cloned().unwrap();

    let rx = get(&m.metrics, "container_network_receive_bytes_total");
    assert_eq!(rx.value, 77);
    let labels: BTreeMap<_, _> = keys(rx.name).into_iter().zip(rx.label_values.iter().cloned()).collect();
    assert_eq!(labels["interface"], "eth0");
    assert_eq!(labels["pod"], "web");
    assert_eq!(labels["container"], "");
    // Whole seconds, as CRI values are integers.
    assert_eq!(get(&m.metrics, "container_cpu_usage_seconds_total").value, 3);

    assert_eq!(m.containers.len(), 1);
    let (id, series) = &m.containers[0];
    assert_eq!(id, &c);
    let cpu = get(series, "container_cpu_usage_seconds_total");
    let labels: BTreeMap<_, _> = keys(cpu.name).into_iter().zip(cpu.label_values.iter().cloned()).collect();
    assert_eq!(
        (labels["container"].as_str(), labels["cpu"].as_str(), labels["id"].as_str()),
        ("app", "total", c.as_str())
    );
    assert_eq!(labels["image"], IMAGE);
    assert_eq!(labels["namespace"], "ns");
    assert_eq!(cpu.value, 2);
    for v in series.iter().chain(&m.metrics) {
        assert_eq!(v.label_values.len(), keys(v.name).len(), "{}", v.name);
    }
}

#[test]
fn list_pod_stats_alone_lets_go_of_removed_containers() {
    let e = env();
    let p = pod(&e, "web", "/k/p");
    let a = container(&e, &p, "a");
    let b = container(&e, &p, "b");
    e.containers.remove(&a).unwrap();
    // The kubelet's CRI stats path calls ListPodSandboxStats and never ListContainerStats.
    let stats = e.stats.list_pod_stats(&PodStatsFilter::default()).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(*e.source.retained.lock().unwrap(), vec![b]);
}
