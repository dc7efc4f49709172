//! Thin safe wrappers over the Linux calls crius needs: mounts, namespaces, pidfds, prctl,
//! sysctls, and cgroup paths and directories (v1, v2 and hybrid) from a root path.
//!
//! Everything here is synchronous and small; the callers (the daemon's adapters and the per-pod
//! monitor) decide threading. Every `unsafe` block carries a `// SAFETY:` line.

pub mod cgroup_oom;
pub mod cgroup_stats;
pub mod cgroups;
pub mod error;
pub mod fds;
pub mod malloc;
pub mod mountinfo;
pub mod mounts;
pub mod namespaces;
pub mod prctl;
pub mod process;
pub mod proctree;
pub mod scm;
pub mod sysctl;
pub mod unix_path;

pub use error::{Error, Result};
