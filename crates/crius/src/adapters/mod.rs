//! The adapters the binary owns: files on disk for pod records and pod files, attach through
//! the pod monitors.

pub mod apparmor;
pub mod atomic;
pub mod attach;
pub mod container_fs;
pub mod image_volumes;
pub mod pod_files;
pub mod securejoin;
pub mod selinux_relabel;
pub mod state_store;
pub mod stats;
