//! Test harness for crius.
//!
//! - [`TestDaemon`]: a real `crius daemon` on its own temp dirs (root, state, netns dir, socket,
//!   config), with connected CRI clients, `kill9`/`restart`/`stop`, a [`TestDaemon::leaks`] check
//!   and a `Drop` that removes everything the daemon left behind, so a failed test leaks nothing.
//!   A test process killed before its destructors ran (a time-out) is swept by the next one to
//!   start a daemon ([`sweep_stale_test_dirs`]).
//! - [`cri`]: CRI request builders ([`pod_config`] and the [`PodConfigExt`] builder methods).
//! - [`Nsenter`]: run a command inside a pod's namespaces, by pinned path or `--target PID`.
//! - [`host`]: readers of /proc (mounts, processes, namespaces) and cgroup paths.
//! - [`network`]: the per-daemon bridge network; network namespaces, links and
//!   [`network::OtherHost`] (a namespace on a veth that plays another host), gone on drop; a UDP
//!   echo server in a namespace.
//!
//! The CRI types and clients, tonic, tokio and serde_json are re-exported, so the versions a test
//! uses are the harness's.

mod builders;
mod daemon;
mod error;
pub mod host;
mod info;
pub mod network;
mod nsenter;

pub use builders::{PodConfigExt, filter_id, filter_labels, filter_state, pod_config, run_request, unique_name};
pub use daemon::{LOOPBACK_CONFLIST, TestDaemon, TestDaemonBuilder, connect, sweep_stale_test_dirs};
pub use error::{Error, Result};
pub use info::{PodInfo, PodNamespaces};
pub use nsenter::{CmdOutput, Ns, Nsenter};

/// The CRI v1 API (messages, enums, clients).
pub use k8s_cri::v1 as cri;
pub use k8s_cri::v1::image_service_client::ImageServiceClient;
pub use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
pub use serde_json;
pub use tokio;
pub use tonic;
pub use tonic::transport::Channel;

/// The fault-injection steps of RunPodSandbox, in order (`CRIUS_CRASH_AT=<step>`).
pub const CRASH_STEPS: &[&str] = &[
    "reserve",
    "plan",
    "state_creating",
    "files",
    "shm",
    "monitor_start",
    "monitor_recorded",
    "monitor_commit",
    "network_setup",
    "network_recorded",
    "hosts",
    "host_ports",
    "state_ready",
];

/// The fault-injection step inside a pod's teardown: after its host ports are closed, before
/// CNI DEL (`CRIUS_CRASH_AT=teardown_network`).
pub const TEARDOWN_CRASH_STEP: &str = "teardown_network";

/// The environment variable that makes the daemon abort right before a step of RunPodSandbox.
pub const CRASH_ENV: &str = "CRIUS_CRASH_AT";

/// Test images built in Rust and a real registry on loopback to serve them.
pub mod image_builder;
pub mod registry;
/// One registry per test binary, its images pushed once, stopped when the process ends.
pub mod shared_registry;
