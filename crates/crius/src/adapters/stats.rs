//! The stats port on the host: cgroup counters through crius-sys (v1, v2 or hybrid, detected
//! once), a pod's interface counters read inside its pinned network namespace, and the disk
//! usage of the containers' writable layers, measured by a background thread so that stats
//! calls only ever look up the last measurement.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crius_core::ports::stats::{
    CgroupSample, CpuSample, InterfaceSample, LayerUsage, MemorySample, StatsSource, SwapSample,
};
use crius_core::sandbox::model::ProcRef;
use crius_sys::cgroup_stats::{self, CgroupStats, InterfaceCounters};
use crius_sys::cgroups::{CgroupLayout, expand_slice};

pub struct HostStats {
    /// None when no hierarchy could be found: stats then report no cpu or memory.
    layout: Option<CgroupLayout>,
    layers: Arc<LayerCache>,
}

impl HostStats {
    /// Detects the cgroup layout under `cgroup_root` and starts measuring writable layers
    /// (`<root>/containers/<id>/upper`) every `interval`.
    pub fn new(cgroup_root: &Path, root: &Path, interval: Duration) -> Self {
        let layout = CgroupLayout::detect(cgroup_root)
            .inspect_err(
                |e| tracing::warn!(error = %e, "stats: no cgroup layout; container stats will lack cpu and memory"),
            )
            .ok();
        let layers = Arc::new(LayerCache::new(root.join("containers")));
        LayerCache::start(&layers, interval);
        HostStats { layout, layers }
    }
}

impl StatsSource for HostStats {
    fn cgroup(&self, cgroup: &str) -> crius_core::Result<Option<CgroupSample>> {
        let Some(layout) = &self.layout else { return Ok(None) };
        let path = cgroupfs_path(cgroup)
            .map_err(|e| crius_core::Error::internal(format!("resolving cgroup {cgroup:?}"), e))?;
        let stats = cgroup_stats::read_cgroup_stats(layout, &path)
            .map_err(|e| crius_core::Error::internal(format!("reading the stats of cgroup {path}"), e))?;
        Ok(stats.map(sample))
    }

    fn network(&self, netns_path: &str, holder: Option<ProcRef>) -> crius_core::Result<Vec<InterfaceSample>> {
        // The pod init lives in the namespace: its /proc/<pid>/net/dev is the same file for
        // ~20 us, where entering the namespace on a thread costs ~400 us a pod. Trusted only
        // if the pid is still that process after the read (a reused pid would be another's).
        if let Some(p) = holder
            && let Ok(text) = std::fs::read_to_string(format!("/proc/{}/net/dev", p.pid))
            && crius_sys::process::is_alive(p.pid, p.start_time)
        {
            return Ok(cgroup_stats::parse_net_dev(&text).into_iter().map(interface).collect());
        }
        let counters = cgroup_stats::read_net_dev_in_netns(Path::new(netns_path))
            .map_err(|e| crius_core::Error::internal(format!("reading the interfaces of {netns_path}"), e))?;
        Ok(counters.into_iter().map(interface).collect())
    }

    fn writable_layer(&self, container_id: &str) -> Option<LayerUsage> {
        self.layers.get(container_id)
    }

    fn retain_layers(&self, live_container_ids: &[String]) {
        self.layers.retain(live_container_ids);
    }
}

/// An OCI cgroupsPath as a path under each hierarchy: cgroupfs paths as they are, systemd's
/// "slice:prefix:name" as runc places it ("<expanded slice>/<prefix>-<name>.scope"), a bare
/// slice name expanded.
fn cgroupfs_path(cgroup: &str) -> crius_sys::Result<String> {
    if cgroup.starts_with('/') {
        return Ok(cgroup.to_string());
    }
    let mut parts = cgroup.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(slice), Some(prefix), Some(name)) => {
            let slice = if slice.is_empty() { "system.slice" } else { slice };
            let scope = if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") };
            Ok(format!("{}/{scope}", expand_slice(slice)?.trim_end_matches('/')))
        }
        _ => expand_slice(cgroup),
    }
}

fn sample(s: CgroupStats) -> CgroupSample {
    CgroupSample {
        cpu: s.cpu.map(|c| CpuSample {
            usage_ns: c.usage_ns,
            user_ns: c.user_ns,
            system_ns: c.system_ns,
            throttled_periods: c.throttled_periods,
            throttled_ns: c.throttled_ns,
        }),
        memory: s.memory.map(|m| MemorySample {
            usage_bytes: m.usage_bytes,
            limit_bytes: m.limit_bytes,
            inactive_file_bytes: m.inactive_file_bytes,
            rss_bytes: m.rss_bytes,
            cache_bytes: m.cache_bytes,
            mapped_file_bytes: m.mapped_file_bytes,
            page_faults: m.page_faults,
            major_page_faults: m.major_page_faults,
            fail_count: m.fail_count,
            max_usage_bytes: m.max_usage_bytes,
        }),
        swap: s.swap.map(|w| SwapSample { usage_bytes: w.usage_bytes, limit_bytes: w.limit_bytes }),
        pids: s.pids,
    }
}

fn interface(i: InterfaceCounters) -> InterfaceSample {
    InterfaceSample {
        name: i.name,
        rx_bytes: i.rx_bytes,
        rx_packets: i.rx_packets,
        rx_errors: i.rx_errors,
        rx_dropped: i.rx_dropped,
        tx_bytes: i.tx_bytes,
        tx_packets: i.tx_packets,
        tx_errors: i.tx_errors,
        tx_dropped: i.tx_dropped,
    }
}

/// The last measurement of each wanted writable layer. A container is wanted from its first
/// stats call until a List no longer sees it.
struct LayerCache {
    dir: PathBuf,
    entries: Mutex<HashMap<String, Option<LayerUsage>>>,
    /// Set when a container is wanted for the first time: measure now, not at the next tick.
    kick: (Mutex<bool>, Condvar),
}

impl LayerCache {
    fn new(dir: PathBuf) -> Self {
        LayerCache { dir, entries: Mutex::default(), kick: (Mutex::new(false), Condvar::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<LayerUsage>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Option<LayerUsage> {
        let mut entries = self.entries();
        if let Some(found) = entries.get(id) {
            return found.clone();
        }
        entries.insert(id.to_string(), None);
        drop(entries);
        let (flag, cv) = &self.kick;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_one();
        None
    }

    fn retain(&self, live: &[String]) {
        let live: std::collections::HashSet<&str> = live.iter().map(String::as_str).collect();
        self.entries().retain(|id, _| live.contains(id.as_str()));
    }

    /// The measuring thread holds only a Weak: it ends when the daemon drops the port.
    fn start(cache: &Arc<LayerCache>, interval: Duration) {
        let weak: Weak<LayerCache> = Arc::downgrade(cache);
        let spawned = std::thread::Builder::new().name("crius-layer-du".into()).spawn(move || {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                cache.measure_all();
                cache.wait(interval);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "stats: cannot start the writable layer measurer");
        }
    }

    fn wait(&self, interval: Duration) {
        let (flag, cv) = &self.kick;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) =
            cv.wait_timeout_while(guard, interval, |kicked| !*kicked).unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }

    fn measure_all(&self) {
        let ids: Vec<String> = self.entries().keys().cloned().collect();
        let mountpoint = self.dir.to_string_lossy().into_owned();
        for id in ids {
            // The walk runs without the lock: a stats call never waits for it.
            let usage = match cgroup_stats::disk_usage(&self.dir.join(&id).join("upper")) {
                Ok(Some(u)) => Some(LayerUsage {
                    bytes: u.bytes,
                    inodes: u.inodes,
                    timestamp_ns: now_ns(),
                    mountpoint: mountpoint.clone(),
                }),
                Ok(None) => None,
                Err(e) => {
                    tracing::debug!(container_id = %id, error = %e, "stats: measuring a writable layer");
                    None
                }
            };
            if let Some(slot) = self.entries().get_mut(&id) {
                *slot = usage;
            }
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_names_become_paths() {
        assert_eq!(cgroupfs_path("/kubepods/pod1/abc").unwrap(), "/kubepods/pod1/abc");
        assert_eq!(
            cgroupfs_path("kubepods-besteffort-podX.slice:crius:abc").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podX.slice/crius-abc.scope"
        );
        assert_eq!(cgroupfs_path("kubepods-podX.slice").unwrap(), "/kubepods.slice/kubepods-podX.slice");
        assert!(cgroupfs_path("nonsense").is_err());
    }

    #[test]
    fn layers_are_measured_in_the_background_once_wanted() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("containers/c1/upper");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::write(upper.join("f"), vec![7u8; 8192]).unwrap();
        let stats = HostStats::new(Path::new("/sys/fs/cgroup"), tmp.path(), Duration::from_secs(3600));
        // The first call only registers the container; the measurer is woken at once.
        assert_eq!(stats.writable_layer("c1"), None);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let usage = loop {
            if let Some(u) = stats.writable_layer("c1") {
                break u;
            }
            assert!(std::time::Instant::now() < deadline, "never measured");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(usage.bytes >= 8192 && usage.inodes == 2, "{usage:?}");
        stats.retain_layers(&[]);
        assert!(stats.layers.entries().is_empty());
    }
}
