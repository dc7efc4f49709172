//! A pod's files on the host: hostname, hosts and resolv.conf under `<root>/pods/<id>/`, and the
//! /dev/shm tmpfs under `<state>/pods/<id>/shm`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crius_core::ports::{PodFilePaths, PodFiles, SandboxFileSet};
use crius_core::{Error, Result};

use super::atomic::write_replace_volatile;

const POD_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

pub struct HostPodFiles {
    root_pods: PathBuf,
    state_pods: PathBuf,
}

impl HostPodFiles {
    pub fn new(root: &Path, state: &Path) -> io::Result<Self> {
        let files = HostPodFiles { root_pods: root.join("pods"), state_pods: state.join("pods") };
        fs::create_dir_all(&files.root_pods)?;
        fs::create_dir_all(&files.state_pods)?;
        Ok(files)
    }

    fn shm_path(&self, pod_id: &str) -> PathBuf {
        self.state_pods.join(pod_id).join("shm")
    }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let message = format!("{what} {}", path.display());
    move |e| Error::internal(message, e)
}

impl PodFiles for HostPodFiles {
    fn paths(&self, pod_id: &str) -> PodFilePaths {
        let file = |name: &str| self.root_pods.join(pod_id).join(name).to_string_lossy().into_owned();
        PodFilePaths {
            hostname: file("hostname"),
            hosts: file("hosts"),
            resolv_conf: file("resolv.conf"),
            shm: self.shm_path(pod_id).to_string_lossy().into_owned(),
        }
    }

    fn create(&self, pod_id: &str, files: &SandboxFileSet) -> Result<()> {
        let dir = self.root_pods.join(pod_id);
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        for (name, content) in POD_FILES.iter().zip([&files.hostname, &files.hosts, &files.resolv_conf]) {
            let path = dir.join(name);
            write_replace_volatile(&path, content.as_bytes(), 0o644).map_err(io_err("writing", &path))?;
        }
        let volatile = self.state_pods.join(pod_id);
        fs::create_dir_all(&volatile).map_err(io_err("creating", &volatile))
    }

    fn write_hosts(&self, pod_id: &str, hosts: &str) -> Result<()> {
        let path = self.root_pods.join(pod_id).join("hosts");
        write_replace_volatile(&path, hosts.as_bytes(), 0o644).map_err(io_err("writing", &path))
    }

    fn mount_shm(&self, pod_id: &str, size_bytes: u64) -> Result<()> {
        let path = self.shm_path(pod_id);
        fs::create_dir_all(&path).map_err(io_err("creating", &path))?;
        let options = crius_sys::mounts::TmpfsOptions::dev_shm(size_bytes);
        crius_sys::mounts::mount_tmpfs(&path, &options).map_err(|e| Error::internal("mounting /dev/shm", e))
    }

    fn unmount_shm(&self, pod_id: &str) -> Result<()> {
        let path = self.shm_path(pod_id);
        crius_sys::mounts::unmount(&path).map_err(|e| Error::internal("unmounting /dev/shm", e))
    }

    fn remove(&self, pod_id: &str) -> Result<()> {
        // Never remove files through a mount that is still there.
        self.unmount_shm(pod_id)?;
        let volatile = self.state_pods.join(pod_id);
        match fs::remove_dir_all(&volatile) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &volatile)(e)),
        }
        for name in POD_FILES {
            let path = self.root_pods.join(pod_id).join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &path)(e)),
            }
        }
        Ok(())
    }

    fn host_resolv_conf(&self) -> Result<String> {
        read_host_file(Path::new("/etc/resolv.conf"))
    }

    fn host_hosts(&self) -> Result<String> {
        read_host_file(Path::new("/etc/hosts"))
    }

    fn host_hostname(&self) -> Result<String> {
        nix::unistd::gethostname()
            .map_err(|e| Error::internal("reading the node's hostname", e))
            .map(|h| h.to_string_lossy().into_owned())
    }
}

/// A node without the file gives pods an empty one, as the reference runtimes do.
fn read_host_file(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::internal(format!("reading {}", path.display()), e)),
    }
}
