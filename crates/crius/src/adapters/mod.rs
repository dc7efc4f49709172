//! The adapters the binary owns: files on disk for pod records and pod files.

pub mod atomic;
pub mod pod_files;
pub mod state_store;
