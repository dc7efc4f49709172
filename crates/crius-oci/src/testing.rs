//! Test support: a busybox rootfs (Debian's busybox-static) and an OCI bundle generated with
//! oci-spec's builders, for the root integration tests that run real containers.

use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, get_default_mounts,
};

/// Where Debian's busybox-static installs the static binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds a rootfs at `dir`: /bin/busybox with one symlink per applet, /etc/passwd, /etc/group,
/// and the empty directories the runtime mounts on.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox"))?;
    let list = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    if !list.status.success() {
        return Err(io::Error::other(format!("{BUSYBOX} --list failed")));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            symlink("busybox", dir.join("bin").join(applet))?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// What the test container looks like.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    pub args: Vec<String>,
    pub terminal: bool,
    /// Each namespace the container gets: a new one (None) or the one pinned at the path.
    pub namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)>,
    pub cgroups_path: Option<String>,
    /// Bytes; the swap limit is set equal (no swap).
    pub memory_limit: Option<i64>,
}

impl BundleSpec {
    /// New mount, pid, ipc, uts and network namespaces; no cgroup limits.
    pub fn new(args: &[&str]) -> Self {
        BundleSpec {
            args: args.iter().map(|a| a.to_string()).collect(),
            terminal: false,
            namespaces: [
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Network,
            ]
            .into_iter()
            .map(|t| (t, None))
            .collect(),
            cgroups_path: None,
            memory_limit: None,
        }
    }

    /// Joins the namespace pinned at `path` instead of making a new one.
    pub fn join(mut self, typ: LinuxNamespaceType, path: impl Into<PathBuf>) -> Self {
        self.namespaces.retain(|(t, _)| *t != typ);
        self.namespaces.push((typ, Some(path.into())));
        self
    }

    pub fn spec(&self, rootfs: &Path) -> Result<Spec, oci_spec::OciSpecError> {
        let process = ProcessBuilder::default()
            .terminal(self.terminal)
            .args(self.args.clone())
            .env(vec!["PATH=/bin".to_string(), "HOME=/root".to_string()])
            .cwd("/")
            .no_new_privileges(true)
            .build()?;
        let root = RootBuilder::default().path(rootfs).readonly(true).build()?;
        let namespaces = self
            .namespaces
            .iter()
            .map(|(typ, path)| {
                let builder = LinuxNamespaceBuilder::default().typ(*typ);
                match path {
                    Some(path) => builder.path(path.clone()).build(),
                    None => builder.build(),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut resources = LinuxResourcesBuilder::default();
        if let Some(limit) = self.memory_limit {
            resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).swap(limit).build()?);
        }
        let mut linux = LinuxBuilder::default().namespaces(namespaces).resources(resources.build()?);
        if let Some(path) = &self.cgroups_path {
            linux = linux.cgroups_path(PathBuf::from(path));
        }
        let new_uts = self.namespaces.iter().any(|(t, p)| *t == LinuxNamespaceType::Uts && p.is_none());
        let mut spec = SpecBuilder::default()
            .version("1.0.2-dev")
            .process(process)
            .root(root)
            .mounts(get_default_mounts())
            .linux(linux.build()?);
        if new_uts {
            spec = spec.hostname("crius-test");
        }
        spec.build()
    }

    /// Writes `<bundle>/config.json` for a container whose rootfs is `rootfs` (read-only, so
    /// several bundles can share one).
    pub fn write(&self, bundle: &Path, rootfs: &Path) -> io::Result<()> {
        std::fs::create_dir_all(bundle)?;
        let spec = self.spec(rootfs).map_err(|e| io::Error::other(e.to_string()))?;
        spec.save(bundle.join("config.json")).map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_has_what_was_asked() {
        let mut b = BundleSpec::new(&["sh", "-c", "exit 3"]).join(LinuxNamespaceType::Network, "/run/x/net");
        b.cgroups_path = Some("/crius-test/c1".into());
        b.memory_limit = Some(1 << 20);
        let json = serde_json::to_value(b.spec(Path::new("/r")).unwrap()).unwrap();
        assert_eq!(json["process"]["args"], serde_json::json!(["sh", "-c", "exit 3"]));
        assert_eq!(json["root"]["path"], "/r");
        assert_eq!(json["linux"]["cgroupsPath"], "/crius-test/c1");
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 1 << 20);
        assert_eq!(json["hostname"], "crius-test");
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(ns.len(), 5);
        assert!(ns.iter().any(|n| n["type"] == "network" && n["path"] == "/run/x/net"));
    }
}
