//! The crate's one error enum: each variant names what failed, with the path or pid involved.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounting {what} on {target}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        errno: Errno,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        errno: Errno,
    },
    #[error("{op} of pid {pid}")]
    Process {
        op: &'static str,
        pid: i32,
        #[source]
        errno: Errno,
    },
    #[error("{op}")]
    Syscall {
        op: &'static str,
        #[source]
        errno: Errno,
    },
    #[error("{op} refused: the process has {threads} threads, forking is only safe with one")]
    NotSingleThreaded { op: &'static str, threads: usize },
    #[error("network interface {name}: {op}")]
    Interface {
        name: String,
        op: &'static str,
        #[source]
        errno: Errno,
    },
    #[error("sysctl {path:?} is not a valid path under /proc/sys: {reason}")]
    InvalidSysctl { path: String, reason: &'static str },
    #[error("cgroup parent {parent:?} is invalid: {reason}")]
    InvalidCgroupParent { parent: String, reason: String },
    #[error("cgroup name {name:?} is invalid: {reason}")]
    InvalidCgroupName { name: String, reason: &'static str },
    #[error(
        "the systemd cgroup driver needs systemd, which is not running here (no /run/systemd/system); \
         set cgroup_driver = \"cgroupfs\""
    )]
    SystemdNotRunning,
    #[error("unknown cgroup driver {0:?}: expected \"cgroupfs\" or \"systemd\"")]
    UnknownCgroupDriver(String),
    #[error("no cgroup hierarchy is mounted under {root}")]
    NoCgroupHierarchy { root: PathBuf },
    #[error("removing cgroup {path}: still busy after {waited_ms} ms")]
    CgroupBusy { path: PathBuf, waited_ms: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Mount { errno, .. }
            | Error::Unmount { errno, .. }
            | Error::Process { errno, .. }
            | Error::Syscall { errno, .. }
            | Error::Interface { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Whether the thing acted on does not exist (ENOENT, or ESRCH for a process).
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(Errno::ENOENT | Errno::ESRCH))
    }
}
