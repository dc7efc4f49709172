//! The current network config, re-read only when something it came from changed: the config
//! directories' mtimes (a file added, removed or renamed) or the chosen file's mtime and size
//! (edited in place). Status is asked every few seconds by the kubelet: this keeps it to a few
//! stat calls.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::conf::{NetworkList, select};
use super::exec::PluginRunner;
use crate::error::NetError;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    dirs: Vec<Option<SystemTime>>,
    file: Option<(PathBuf, Option<SystemTime>, u64)>,
}

#[derive(Debug)]
pub struct ConfigLoader {
    dirs: Vec<PathBuf>,
    name: String,
    seen: Option<Fingerprint>,
    current: Result<(PathBuf, NetworkList), String>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ConfigLoader {
    pub fn new(dirs: Vec<PathBuf>, name: String) -> Self {
        ConfigLoader { dirs, name, seen: None, current: Err("not read yet".into()) }
    }

    fn fingerprint(&self, file: Option<&Path>) -> Fingerprint {
        Fingerprint {
            dirs: self.dirs.iter().map(|d| mtime(d)).collect(),
            file: file.map(|f| {
                let meta = std::fs::metadata(f).ok();
                (f.to_path_buf(), meta.as_ref().and_then(|m| m.modified().ok()), meta.map_or(0, |m| m.len()))
            }),
        }
    }

    fn refresh(&mut self) {
        let chosen = self.current.as_ref().ok().map(|(p, _)| p.clone());
        if self.seen.as_ref() == Some(&self.fingerprint(chosen.as_deref())) {
            return;
        }
        let selection = select(&self.dirs, &self.name);
        self.current = match selection.found.clone() {
            Some(found) => Ok(found),
            None => Err(selection.not_found(&self.dirs, &self.name).to_string()),
        };
        let chosen = self.current.as_ref().ok().map(|(p, _)| p.clone());
        self.seen = Some(self.fingerprint(chosen.as_deref()));
        match &self.current {
            Ok((path, list)) => {
                tracing::info!(file = %path.display(), network = %list.name, "CNI network config loaded")
            }
            Err(reason) => tracing::warn!(reason = %reason, "no CNI network config"),
        }
    }

    /// The network to use now.
    pub fn current(&mut self) -> Result<NetworkList, NetError> {
        self.refresh();
        match &self.current {
            Ok((_, list)) => Ok(list.clone()),
            Err(_) => {
                let selection = select(&self.dirs, &self.name);
                Err(selection.not_found(&self.dirs, &self.name))
            }
        }
    }

    /// Ready when a config exists and every plugin of its chain is installed.
    pub fn readiness(&mut self, runner: &PluginRunner) -> Result<(), String> {
        self.refresh();
        let (path, list) = self.current.as_ref().map_err(|e| e.clone())?;
        for plugin in list.plugin_types() {
            runner.find(plugin).map_err(|e| format!("network {:?} ({}): {e}", list.name, path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn picks_up_new_edited_and_removed_configs() {
        let dir = tempfile::tempdir().unwrap();
        let bins = tempfile::tempdir().unwrap();
        let runner = PluginRunner::new(vec![bins.path().into()], Duration::from_secs(1));
        let mut loader = ConfigLoader::new(vec![dir.path().into()], String::new());
        assert!(loader.readiness(&runner).unwrap_err().contains("no usable CNI network config"));

        let file = dir.path().join("10-a.conflist");
        std::fs::write(&file, r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#).unwrap();
        assert_eq!(loader.current().unwrap().name, "a");
        // The plugin is not installed: not ready, saying which one.
        assert!(loader.readiness(&runner).unwrap_err().contains("\"bridge\" not found"));
        std::fs::write(bins.path().join("bridge"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bins.path().join("bridge"), std::fs::Permissions::from_mode(0o755)).unwrap();
        loader.readiness(&runner).unwrap();

        // Edited in place (the directory's mtime may not change): the size does.
        std::fs::write(&file, r#"{"cniVersion":"1.0.0","name":"renamed","plugins":[{"type":"bridge"}]}"#).unwrap();
        assert_eq!(loader.current().unwrap().name, "renamed");

        std::fs::remove_file(&file).unwrap();
        assert!(loader.current().is_err());
    }
}
