//! cgroups: which hierarchies are mounted (v1, v2 or hybrid), the path of a cgroup for each
//! driver (cgroupfs or systemd naming), and making, joining and removing a cgroup in every
//! hierarchy. Everything takes the root path (normally /sys/fs/cgroup) so tests run on fixture
//! trees.

mod fs;
mod layout;
mod path;

pub use fs::procs;
pub use layout::{CgroupLayout, CgroupMode, V1Hierarchy};
pub use path::{CgroupDriver, cgroup_path, expand_slice, systemd_running, validate_cgroup_path};

pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";
