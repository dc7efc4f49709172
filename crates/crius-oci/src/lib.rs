//! The OCI runtime driver: typed subcommands turned into argv for runc and crun ([`argv`]),
//! running them and surfacing the runtime's own error message ([`run`], [`output`]), `exec`
//! with bounded capture and a timeout that kills the whole exec'd tree ([`exec`]), and `update`
//! with OCI `LinuxResources` that crius-core's spec builder made (one conversion of CRI resources
//! for CreateContainer and UpdateContainerResources).
//!
//! [`port::OciPort`] implements crius-core's `OciRuntime` port over these. The per-pod monitor
//! uses [`argv`] to run `create`/`start` itself (it holds the container's stdio).

pub mod argv;
pub mod error;
pub mod exec;
pub mod id;
pub mod output;
pub mod port;
pub mod run;
/// A busybox rootfs and bundle builder for the root integration tests of the crates that run
/// containers (here and in crius-monitor); not used by crius itself.
#[doc(hidden)]
pub mod testing;

mod capture;

pub use argv::{Create, Exec, ExecProcess, Runtime, RuntimeKind, Subcommand};
pub use error::OciError;
pub use id::validate_container_id;
pub use output::{ContainerState, ContainerStatus};
pub use port::{OciConfig, OciPort};
