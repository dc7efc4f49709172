//! The CNI flow against scripted plugins that log each call (command, netns, stdin) and fail on
//! demand, so chaining, DEL order, prevResult, the cache and retries are checked without root.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crius_core::sandbox::model::{PortMapping, Protocol};
use serde_json::{Value, json};

use super::*;

/// Appends `{"cmd","plugin","netns","args","stdin"}` to calls.log; fails once when a file
/// fail-<plugin>-<CMD> exists; answers ADD with a dual-stack result.
const SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
name=$(basename "$0")
stdin=$(cat)
printf '{"cmd":"%s","plugin":"%s","netns":"%s","args":"%s","stdin":%s}\n' "$CNI_COMMAND" "$name" "$CNI_NETNS" "$CNI_ARGS" "$stdin" >> "$dir/calls.log"
if [ -e "$dir/fail-$name-$CNI_COMMAND" ]; then
  rm "$dir/fail-$name-$CNI_COMMAND"
  echo '{"cniVersion":"1.0.0","code":7,"msg":"injected failure of '"$name"'"}'
  exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.9.0.2/24","interface":0},{"address":"fd09::2/64","interface":0}]}'
fi
"#;

struct Env {
    _dir: tempfile::TempDir,
    bins: PathBuf,
    confs: PathBuf,
    net: CniNetwork,
}

fn env_with(version: &str, manager: HostPortManagerKind) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bin");
    let confs = dir.path().join("net.d");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::create_dir_all(&confs).unwrap();
    for name in ["first", "second"] {
        let path = bins.join(name);
        std::fs::write(&path, SCRIPT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let conf = json!({
        "cniVersion": version, "name": "testnet",
        "plugins": [{"type": "first", "k": 1}, {"type": "second", "capabilities": {"portMappings": true, "bandwidth": true}}]
    });
    std::fs::write(confs.join("10-test.conflist"), conf.to_string()).unwrap();
    let config = NetworkConfig {
        conf_dirs: vec![confs.clone()],
        bin_dirs: vec![bins.clone()],
        hostport_manager: manager,
        del_attempts: 3,
        plugin_timeout_secs: 10,
        ..Default::default()
    };
    let net = CniNetwork::new(config, dir.path().join("cni/results"));
    Env { bins, confs, net, _dir: dir }
}

fn env() -> Env {
    env_with("1.0.0", HostPortManagerKind::Crius)
}

impl Env {
    fn calls(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.bins.join("calls.log")).unwrap_or_default();
        let calls = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let _ = std::fs::remove_file(self.bins.join("calls.log"));
        calls
    }

    fn fail_once(&self, plugin: &str, command: &str) {
        std::fs::write(self.bins.join(format!("fail-{plugin}-{command}")), "").unwrap();
    }

    fn summary(calls: &[Value]) -> Vec<String> {
        calls.iter().map(|c| format!("{} {}", c["cmd"].as_str().unwrap(), c["plugin"].as_str().unwrap())).collect()
    }
}

/// A real namespace is not needed by the scripts; a path that exists is.
fn request(netns: &Path) -> NetworkRequest {
    NetworkRequest {
        pod_id: "pod1".into(),
        name: "web".into(),
        namespace: "default".into(),
        uid: "uid-1".into(),
        netns_path: netns.display().to_string(),
        annotations: BTreeMap::from([("kubernetes.io/egress-bandwidth".to_string(), "1M".to_string())]),
        port_mappings: vec![PortMapping {
            protocol: Protocol::Udp,
            container_port: 53,
            host_port: 5353,
            host_ip: String::new(),
        }],
        cgroup_parent: String::new(),
    }
}

#[test]
fn add_chains_prev_results_and_del_runs_in_reverse_with_the_cached_result() {
    let e = env();
    let req = request(&e.confs);
    let status = e.net.setup(&req).unwrap();
    assert_eq!(status.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(), ["10.9.0.2", "fd09::2"]);
    assert_eq!(status.network_name, "testnet");
    assert_eq!(status.interfaces[0].name, "eth0");

    let calls = e.calls();
    assert_eq!(Env::summary(&calls), ["ADD first", "ADD second"]);
    assert_eq!(calls[0]["stdin"]["name"], "testnet");
    assert_eq!(calls[0]["stdin"]["cniVersion"], "1.0.0");
    assert_eq!(calls[0]["stdin"]["k"], 1);
    assert!(calls[0]["stdin"].get("prevResult").is_none());
    assert!(calls[0]["stdin"].get("runtimeConfig").is_none());
    assert_eq!(calls[1]["stdin"]["prevResult"]["ips"][0]["address"], "10.9.0.2/24");
    assert_eq!(
        calls[1]["args"],
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=uid-1"
    );
    // crius manages host ports: portmap would be told there are none.
    assert_eq!(calls[1]["stdin"]["runtimeConfig"]["portMappings"], json!([]));
    assert_eq!(calls[1]["stdin"]["runtimeConfig"]["bandwidth"]["egressRate"], 1_000_000);

    // The config changes before the pod goes: DEL still uses the one ADD used.
    std::fs::remove_file(e.confs.join("10-test.conflist")).unwrap();
    e.net.teardown(&req).unwrap();
    let calls = e.calls();
    assert_eq!(Env::summary(&calls), ["DEL second", "DEL first"]);
    assert_eq!(calls[0]["stdin"]["prevResult"]["ips"][1]["address"], "fd09::2/64");
    assert_eq!(calls[1]["stdin"]["k"], 1);
    assert!(e.net.cache().load("pod1").unwrap().is_none());

    // Again: no cache and no config left, nothing to do.
    e.net.teardown(&req).unwrap();
    assert!(e.calls().is_empty());
}

#[test]
fn failed_add_is_deleted_at_once_and_reports_the_plugin_error() {
    let e = env();
    e.fail_once("second", "ADD");
    let err = e.net.setup(&request(&e.confs)).unwrap_err();
    assert!(matches!(&err, NetError::Plugin { code: 7, .. }), "{err:?}");
    assert!(err.to_string().contains("injected failure of second"), "{err}");
    assert_eq!(Env::summary(&e.calls()), ["ADD first", "ADD second", "DEL second", "DEL first"]);
    assert!(e.net.cache().load("pod1").unwrap().is_none());
}

#[test]
fn del_is_retried_and_runs_without_a_netns_once_it_is_gone() {
    let e = env();
    let ns = e.confs.join("fake-netns");
    std::fs::write(&ns, "").unwrap();
    let req = request(&ns);
    e.net.setup(&req).unwrap();
    e.calls();
    e.fail_once("first", "DEL");
    e.net.teardown(&req).unwrap();
    let calls = e.calls();
    assert_eq!(Env::summary(&calls), ["DEL second", "DEL first", "DEL second", "DEL first"]);
    // A plain file is not a namespace: DEL gets an empty CNI_NETNS, as the spec allows.
    assert!(calls.iter().all(|c| c["netns"] == ""));
}

#[test]
fn del_gives_up_after_the_configured_attempts() {
    let mut e = env();
    e.net.config.del_attempts = 1;
    let req = request(&e.confs);
    e.net.setup(&req).unwrap();
    e.fail_once("second", "DEL");
    let err = e.net.teardown(&req).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    // Kept for the next try.
    assert!(e.net.cache().load("pod1").unwrap().is_some());
    e.net.teardown(&req).unwrap();
}

#[test]
fn check_uses_the_cached_result() {
    let e = env();
    let req = request(&e.confs);
    e.net.setup(&req).unwrap();
    e.calls();
    e.net.check(&req).unwrap();
    let calls = e.calls();
    assert_eq!(Env::summary(&calls), ["CHECK first", "CHECK second"]);
    assert_eq!(calls[0]["stdin"]["prevResult"]["ips"][0]["address"], "10.9.0.2/24");
    e.fail_once("second", "CHECK");
    assert!(e.net.check(&req).is_err());
}

#[test]
fn version_0_3_has_no_check_and_no_prev_result_on_del() {
    let e = env_with("0.3.1", HostPortManagerKind::Cni);
    let req = request(&e.confs);
    e.net.setup(&req).unwrap();
    let calls = e.calls();
    assert_eq!(calls[1]["stdin"]["runtimeConfig"]["portMappings"][0]["hostPort"], 5353);
    assert_eq!(calls[1]["stdin"]["runtimeConfig"]["portMappings"][0]["protocol"], "udp");
    e.net.check(&req).unwrap();
    assert!(e.calls().is_empty());
    e.net.teardown(&req).unwrap();
    let calls = e.calls();
    assert_eq!(Env::summary(&calls), ["DEL second", "DEL first"]);
    assert!(calls.iter().all(|c| c["stdin"].get("prevResult").is_none()));
    assert_eq!(calls[0]["stdin"]["runtimeConfig"]["portMappings"][0]["containerPort"], 53);
}

#[test]
fn teardown_without_cache_uses_the_current_config() {
    let e = env();
    e.net.teardown(&request(&e.confs)).unwrap();
    let calls = e.calls();
    assert_eq!(Env::summary(&calls), ["DEL second", "DEL first"]);
    assert!(calls[0]["stdin"].get("prevResult").is_none());
}

#[test]
fn bad_requests_make_nothing() {
    let e = env();
    let mut req = request(&e.confs);
    req.annotations.insert("kubernetes.io/ingress-bandwidth".into(), "fast".into());
    assert!(matches!(e.net.setup(&req), Err(NetError::InvalidRequest { .. })));
    req.annotations.clear();
    req.netns_path.clear();
    assert!(matches!(e.net.setup(&req), Err(NetError::InvalidRequest { .. })));
    assert!(e.calls().is_empty());
    assert!(e.net.cache().load("pod1").unwrap().is_none());
}

#[test]
fn readiness_follows_the_config_dir() {
    let e = env();
    assert!(e.net.status().ready);
    std::fs::remove_file(e.confs.join("10-test.conflist")).unwrap();
    let status = e.net.status();
    assert!(!status.ready);
    assert_eq!(status.reason, "NetworkPluginNotReady");
    assert!(status.message.contains("no usable CNI network config"), "{}", status.message);
    let err = e.net.setup(&request(&e.confs)).unwrap_err();
    assert!(matches!(err, NetError::NoNetworkConfig { .. }), "{err:?}");
}
