//! The daemon as a server (run as root): its socket (mode, a second daemon, a stale file), its
//! graceful stop, the runtime-level RPCs (Version, Status, RuntimeConfig, UpdateRuntimeConfig,
//! what is not implemented), and the `config` and `version` subcommands.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crius_testkit::TestDaemon;
use crius_testkit::cri::{self, CgroupDriver};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_crius");

async fn daemon() -> TestDaemon {
    TestDaemon::start(BIN).await.unwrap_or_else(|e| panic!("the daemon did not start: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0660_taken_once_and_a_stale_one_is_replaced() {
    let mut td = daemon().await;
    let mode = std::fs::metadata(td.socket()).expect("the socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the CRI socket's mode");

    // A second daemon (its own dirs) on the same live socket refuses to start and says why.
    let other = tempfile::tempdir().expect("a temp dir");
    let second = Command::new(BIN)
        .args(["daemon", "--listen"])
        .arg(td.socket())
        .arg("--root")
        .arg(other.path().join("lib"))
        .arg("--state")
        .arg(other.path().join("run"))
        .output()
        .expect("running a second daemon");
    assert!(!second.status.success(), "a second daemon started on a live socket");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another process is serving") && stderr.contains(&td.socket().display().to_string()),
        "{stderr}"
    );
    assert_eq!(td.runtime().version(cri::VersionRequest::default()).await.map(|_| ()).map_err(|s| s.code()), Ok(()));

    // SIGTERM: a clean exit, and the socket goes with it.
    let status = td.stop().await.expect("the daemon stops on SIGTERM");
    assert!(status.success(), "the daemon's exit on SIGTERM: {status}\n{}", td.log_tail(30));
    assert!(!td.socket().exists(), "the socket was left behind");

    // A socket file nobody listens on (a daemon that was killed) is replaced.
    drop(std::os::unix::net::UnixListener::bind(td.socket()).expect("binding a stale socket"));
    assert!(td.socket().exists());
    td.restart().await.unwrap_or_else(|e| panic!("the daemon did not replace the stale socket: {e}"));
    td.assert_no_leaks().await;
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_level_calls() {
    let td = daemon().await;
    let rt = td.runtime();
    let v = rt.clone().version(cri::VersionRequest { version: "v1".into() }).await.expect("Version").into_inner();
    assert_eq!((v.runtime_name.as_str(), v.runtime_api_version.as_str()), ("crius", "v1"));
    assert_eq!(v.runtime_version, env!("CARGO_PKG_VERSION"));

    let config = rt.clone().runtime_config(cri::RuntimeConfigRequest {}).await.expect("RuntimeConfig").into_inner();
    assert_eq!(config.linux.map(|l| l.cgroup_driver), Some(CgroupDriver::Cgroupfs as i32));

    let update = cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig {
            network_config: Some(cri::NetworkConfig { pod_cidr: "10.244.7.0/24".into() }),
        }),
    };
    rt.clone().update_runtime_config(update).await.expect("UpdateRuntimeConfig");
    let status = rt.clone().status(cri::StatusRequest { verbose: true }).await.expect("Status").into_inner();
    let info: serde_json::Value = serde_json::from_str(status.info.get("info").expect("verbose info")).expect("JSON");
    assert_eq!(info["podCIDR"], "10.244.7.0/24");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["config"]["listen"].is_string(), "the effective config: {info}");
    // The default handler is listed, and under "" as the kubelet expects.
    let handlers: Vec<&str> = status.runtime_handlers.iter().map(|h| h.name.as_str()).collect();
    assert!(handlers.starts_with(&["", "runc"]), "{handlers:?}");

    let checkpoint = cri::CheckpointContainerRequest { container_id: "x".into(), ..Default::default() };
    let err = rt.clone().checkpoint_container(checkpoint).await.expect_err("not implemented");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("CheckpointContainer"), "{}", err.message());
    td.assert_no_leaks().await;
}

#[test]
fn config_and_version_subcommands() {
    let out = Command::new(BIN).arg("version").output().expect("crius version");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let out = Command::new(BIN).arg("config").output().expect("crius config");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let parsed: toml::Value = toml::from_str(&text).expect("crius config prints TOML");
    assert_eq!(parsed["listen"].as_str(), Some("/run/crius/crius.sock"), "{text}");

    // What `crius config` prints is a valid file, and a bad file is refused naming file and key.
    let dir = tempfile::tempdir().expect("a temp dir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).expect("writing");
    let out = Command::new(BIN).arg("--config").arg(&good).arg("config").output().expect("crius config");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "root = \"var/lib/crius\"\nno_such_key = 1\n").expect("writing");
    let out = Command::new(BIN).arg("--config").arg(&bad).arg("config").output().expect("crius config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("bad.toml") && stderr.contains("no_such_key"), "{stderr}");
    std::fs::write(&bad, "root = \"var/lib/crius\"\n").expect("writing");
    let out = Command::new(BIN).arg("--config").arg(&bad).arg("config").output().expect("crius config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("bad.toml") && stderr.contains("absolute"), "{stderr}");
}
