//! The per-pod monitor: one small single-threaded process per pod (`crius monitor`), started by
//! the daemon and outliving it. It creates the pod init in the pod's new namespaces, pins them,
//! places the init in the pod cgroup, and serves a small versioned protocol on a unix socket
//! until it is told to shut down.
//!
//! - [`run_monitor`] is the monitor process's entry (the binary's hidden `monitor` subcommand).
//! - [`port::MonitorPort`] is the daemon's side: crius-core's `PodMonitor` port.
//! - [`protocol`] holds the wire messages, [`client`] a blocking client for them.
//! - Containers: the monitor creates them with the OCI runtime while holding their stdio, writes
//!   their output to CRI log files ([`crilog`]) and records their exits ([`exits`]);
//!   `MonitorPort` also implements crius-core's `ContainerMonitor`, and [`exits::ExitDir`] its
//!   `ExitRecords`.

pub mod args;
pub mod attach_client;
pub mod attach_wire;
pub mod client;
pub mod crilog;
pub mod error;
pub mod exits;
pub mod paths;
pub mod port;
pub mod protocol;

mod exit_watch;
mod monitor;
mod reaper;

pub use args::MonitorArgs;
pub use error::MonitorError;
pub use exits::ExitDir;
pub use monitor::run_monitor;
pub use port::{MonitorConfig, MonitorPort};
