//! A pod's network through CNI: ADD the chain in order, DEL it in reverse with the cached
//! config and result, CHECK where the version allows.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crius_core::ports::network::{NetworkReadiness, NetworkRequest, NetworkStatus};
use serde_json::Value;

use super::args::{CapabilityArgs, cni_args, plugin_stdin};
use super::cache::{CacheEntry, ResultCache};
use super::conf::NetworkList;
use super::exec::{CniCommand, Invocation, PluginRunner};
use super::loader::ConfigLoader;
use super::result::CniResult;
use crate::config::{HostPortManagerKind, NetworkConfig};
use crate::error::NetError;

/// First pause between DEL attempts; doubled after each failure.
const DEL_BACKOFF: Duration = Duration::from_millis(200);

pub struct CniNetwork {
    config: NetworkConfig,
    runner: PluginRunner,
    cache: ResultCache,
    loader: Mutex<ConfigLoader>,
}

impl CniNetwork {
    /// `cache_dir` is `<root>/cni/results`.
    pub fn new(config: NetworkConfig, cache_dir: impl Into<PathBuf>) -> Self {
        let runner = PluginRunner::new(config.bin_dirs.clone(), Duration::from_secs(config.plugin_timeout_secs));
        let loader = ConfigLoader::new(config.conf_dirs.clone(), config.network_name.clone());
        CniNetwork { config, runner, cache: ResultCache::new(cache_dir), loader: Mutex::new(loader) }
    }

    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    fn loader(&self) -> std::sync::MutexGuard<'_, ConfigLoader> {
        self.loader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// CNI ADD. The cache entry is written first, so that a crash during ADD leaves what DEL
    /// needs; on failure the chain is DELeted here (best effort), so a failed setup leaves
    /// nothing but, at worst, the cache entry a later teardown finishes with.
    pub fn setup(&self, request: &NetworkRequest) -> Result<NetworkStatus, NetError> {
        if request.netns_path.is_empty() {
            return Err(NetError::InvalidRequest {
                what: format!("pod sandbox {}", request.pod_id),
                reason: "no network namespace path to set up".into(),
            });
        }
        let list = self.loader().current()?;
        let with_ports = self.config.hostport_manager == HostPortManagerKind::Cni;
        let caps = CapabilityArgs::for_pod(request, with_ports)?;
        let mut entry = CacheEntry::new(
            &request.pod_id,
            &list.name,
            &self.config.interface,
            list.raw.clone(),
            cni_args(request),
            caps,
            &request.netns_path,
        );
        self.cache.store(&entry)?;

        let started = Instant::now();
        let outcome = self.add_chain(&list, &entry).and_then(|result| {
            let parsed = CniResult::parse(&result).map_err(|reason| NetError::BadResult {
                plugin: list.plugins.last().map(|p| p.plugin_type.clone()).unwrap_or_default(),
                command: "ADD",
                reason,
            })?;
            Ok((result, parsed))
        });
        let (result, parsed) = match outcome {
            Ok(done) => done,
            Err(e) => {
                match self.del_chain(&list, &entry, request.netns_path.as_str()) {
                    Ok(()) => {
                        let _ = self.cache.delete(&request.pod_id);
                    }
                    Err(del) => {
                        tracing::warn!(pod_id = %request.pod_id, error = %del, "DEL after a failed ADD failed; teardown will retry")
                    }
                }
                return Err(e);
            }
        };
        entry.result = Some(result.clone());
        self.cache.store(&entry)?;
        tracing::debug!(pod_id = %request.pod_id, network = %list.name, elapsed_ms = started.elapsed().as_millis() as u64, "CNI ADD done");
        Ok(NetworkStatus {
            ips: parsed.pod_ips(self.config.ip_preference),
            interfaces: parsed.interfaces,
            network_name: list.name.clone(),
            cni_result_json: result.to_string(),
        })
    }

    fn add_chain(&self, list: &NetworkList, entry: &CacheEntry) -> Result<Value, NetError> {
        let inv = Invocation {
            command: CniCommand::Add,
            container_id: &entry.pod_id,
            netns: &entry.netns,
            if_name: &entry.if_name,
            args: &entry.cni_args,
        };
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let stdin = plugin_stdin(list, plugin, &entry.capability_args, prev.as_ref())?;
            let out = self.runner.run(&plugin.plugin_type, &inv, stdin)?;
            // A plugin may print nothing (some meta plugins do): the previous result stands.
            if out.iter().any(|b| !b.is_ascii_whitespace()) {
                let value: Value = serde_json::from_slice(&out).map_err(|e| NetError::BadResult {
                    plugin: plugin.plugin_type.clone(),
                    command: "ADD",
                    reason: e.to_string(),
                })?;
                prev = Some(value);
            }
        }
        prev.ok_or_else(|| NetError::BadResult {
            plugin: list.plugins.last().map(|p| p.plugin_type.clone()).unwrap_or_default(),
            command: "ADD",
            reason: "no plugin of the chain returned a result".into(),
        })
    }

    /// DEL of every plugin in reverse. prevResult is the cached result from 0.4.0 on.
    fn del_chain(&self, list: &NetworkList, entry: &CacheEntry, netns: &str) -> Result<(), NetError> {
        let inv = Invocation {
            command: CniCommand::Del,
            container_id: &entry.pod_id,
            netns,
            if_name: &entry.if_name,
            args: &entry.cni_args,
        };
        let prev = if list.version.has_check() { entry.result.as_ref() } else { None };
        for plugin in list.plugins.iter().rev() {
            let stdin = plugin_stdin(list, plugin, &entry.capability_args, prev)?;
            self.runner.run(&plugin.plugin_type, &inv, stdin)?;
        }
        Ok(())
    }

    /// CNI CHECK with the cached result. Ok without running anything when the network's
    /// version has no CHECK or the config turns it off.
    pub fn check(&self, request: &NetworkRequest) -> Result<(), NetError> {
        let Some(entry) = self.cache.load(&request.pod_id)? else {
            return Err(NetError::InvalidRequest {
                what: format!("pod sandbox {}", request.pod_id),
                reason: "has no CNI network set up".into(),
            });
        };
        let list = self.cached_list(&entry)?;
        let Some(result) = entry.result.as_ref() else {
            return Err(NetError::InvalidRequest {
                what: format!("pod sandbox {}", request.pod_id),
                reason: "its CNI ADD did not complete".into(),
            });
        };
        if !list.version.has_check() || list.disable_check {
            return Ok(());
        }
        let inv = Invocation {
            command: CniCommand::Check,
            container_id: &entry.pod_id,
            netns: &entry.netns,
            if_name: &entry.if_name,
            args: &entry.cni_args,
        };
        for plugin in &list.plugins {
            let stdin = plugin_stdin(&list, plugin, &entry.capability_args, Some(result))?;
            self.runner.run(&plugin.plugin_type, &inv, stdin)?;
        }
        Ok(())
    }

    fn cached_list(&self, entry: &CacheEntry) -> Result<NetworkList, NetError> {
        NetworkList::parse(entry.config.clone()).map_err(|reason| NetError::BadCache {
            path: self.cache.dir().join(format!("{}.json", entry.pod_id)),
            reason,
        })
    }

    /// CNI DEL, idempotent, retried with backoff. Uses the cached config and result; without a
    /// cache entry (never set up by this crius, or the cache was lost) it DELs with the current
    /// config, which plugins treat as a no-op when they hold nothing for the pod.
    /// CNI DEL, from the cache, for every pod with a cached result that is not in `known`.
    /// Their namespaces are gone (a reboot) or will go with their monitor: DEL runs without one.
    pub fn teardown_unknown(&self, known: &[String]) -> Result<Vec<String>, NetError> {
        let mut done = Vec::new();
        for pod_id in self.cache.pod_ids()?.into_iter().filter(|id| !known.contains(id)) {
            let request = NetworkRequest { pod_id: pod_id.clone(), ..Default::default() };
            self.teardown(&request)?;
            tracing::info!(pod_id = %pod_id, "tore down the network of a pod crius has no record of");
            done.push(pod_id);
        }
        Ok(done)
    }

    pub fn teardown(&self, request: &NetworkRequest) -> Result<(), NetError> {
        let entry = match self.cache.load(&request.pod_id)? {
            Some(entry) => entry,
            None => {
                let list = match self.loader().current() {
                    Ok(list) => list,
                    // No cache and no config: nothing crius could have set up is known.
                    Err(NetError::NoNetworkConfig { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                };
                // portmap's DEL does nothing without the mappings: give them when it owns them.
                let with_ports = self.config.hostport_manager == HostPortManagerKind::Cni;
                let caps = CapabilityArgs::for_pod(request, with_ports).unwrap_or_default();
                CacheEntry::new(
                    &request.pod_id,
                    &list.name,
                    &self.config.interface,
                    list.raw.clone(),
                    cni_args(request),
                    caps,
                    &request.netns_path,
                )
            }
        };
        let list = self.cached_list(&entry)?;
        let netns = usable_netns(&request.netns_path);
        let mut backoff = DEL_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.del_chain(&list, &entry, &netns) {
                Ok(()) => break,
                Err(e) if attempt < self.config.del_attempts => {
                    tracing::warn!(pod_id = %request.pod_id, attempt, error = %e, "CNI DEL failed; retrying");
                    thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        self.cache.delete(&request.pod_id)
    }

    pub fn status(&self) -> NetworkReadiness {
        match self.loader().readiness(&self.runner) {
            Ok(()) => NetworkReadiness { ready: true, reason: String::new(), message: String::new() },
            Err(message) => NetworkReadiness {
                ready: false,
                reason: "NetworkPluginNotReady".into(),
                message: format!("Network plugin returns error: cni plugin not initialized: {message}"),
            },
        }
    }
}

/// The namespace path to give DEL: the pinned path while it still is a namespace, else "" (the
/// spec lets DEL run without one; plugins then release what they hold outside it).
fn usable_netns(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    match nix::sys::statfs::statfs(Path::new(path)) {
        // A pinned namespace is an nsfs file; anything else (a stale empty file) is not one.
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC => path.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
