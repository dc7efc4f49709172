//! The current network config, re-read only when a candidate file may have changed. Status is
//! asked every few seconds by the kubelet: this keeps it to one listing and one stat per config
//! file of each directory.
//!
//! Every candidate file counts, not only the chosen one: fixing a broken file in place, or one
//! that sorts before the chosen file, changes which network is used.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::conf::{NetworkList, config_files, select};
use super::exec::PluginRunner;
use crate::error::NetError;

/// How recent a file's timestamp must be for its stat to be no proof that it is unchanged. A
/// filesystem stamps in ticks (a jiffy on ext4 and tmpfs, seconds on some), so a same-size
/// rewrite in the tick just after we looked keeps every stat field; git calls this "racily
/// clean" and so re-reads such files. Two seconds covers the coarsest common filesystems.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A candidate file as stat shows it: any change of content changes one of these fields (past
/// the racy window).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    /// Every candidate file of every directory, in the order select() reads them.
    files: Vec<Stamp>,
    /// Some file changed too recently for its stat to be trusted: read again next time.
    racy: bool,
}

#[derive(Debug)]
pub struct ConfigLoader {
    dirs: Vec<PathBuf>,
    name: String,
    racy_window: Duration,
    seen: Option<Fingerprint>,
    current: Result<(PathBuf, NetworkList), String>,
    /// How many times the files were read and parsed (the tests check the cache holds).
    #[cfg(test)]
    reads: u64,
}

fn stamp(path: PathBuf) -> Option<Stamp> {
    // Follows symlinks, as reading does: a link switched to another target is a change.
    let m = std::fs::metadata(&path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        path,
    })
}

/// Whether a timestamp (seconds and nanoseconds since the epoch) is less than `window` old, or
/// in the future (a clock set back).
fn recent((secs, nanos): (i64, i64), now: SystemTime, window: Duration) -> bool {
    let Ok(secs) = u64::try_from(secs) else {
        return false;
    };
    let Some(ts) = SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, u32::try_from(nanos).unwrap_or(0))) else {
        return true;
    };
    match now.duration_since(ts) {
        Ok(age) => age < window,
        Err(_) => true,
    }
}

impl ConfigLoader {
    pub fn new(dirs: Vec<PathBuf>, name: String) -> Self {
        ConfigLoader {
            dirs,
            name,
            racy_window: RACY_WINDOW,
            seen: None,
            current: Err("not read yet".into()),
            #[cfg(test)]
            reads: 0,
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let now = SystemTime::now();
        let files: Vec<Stamp> = self.dirs.iter().flat_map(|d| config_files(d)).filter_map(stamp).collect();
        let racy =
            files.iter().any(|s| recent(s.mtime, now, self.racy_window) || recent(s.ctime, now, self.racy_window));
        Fingerprint { files, racy }
    }

    fn refresh(&mut self) {
        // Taken before reading: a change made while we read shows up as a difference next time.
        let fresh = self.fingerprint();
        if let Some(seen) = &self.seen
            && !seen.racy
            && seen.files == fresh.files
        {
            return;
        }
        self.seen = Some(fresh);
        #[cfg(test)]
        {
            self.reads += 1;
        }
        let selection = select(&self.dirs, &self.name);
        let next = match selection.found {
            Some(found) => Ok(found),
            None => Err(selection.not_found(&self.dirs, &self.name).to_string()),
        };
        // A racy file is read again on every call for a moment: log changes only.
        if next == self.current {
            return;
        }
        self.current = next;
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
    use std::path::Path;
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

    fn conflist(name: &str) -> String {
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge"}}]}}"#)
    }

    /// Rewrites the file's content in place: same inode, no rename, the directory untouched.
    fn rewrite(path: &Path, body: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
        f.write_all(body.as_bytes()).unwrap();
    }

    fn ready_runner(bins: &Path) -> PluginRunner {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(bins.join("bridge"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bins.join("bridge"), std::fs::Permissions::from_mode(0o755)).unwrap();
        PluginRunner::new(vec![bins.into()], Duration::from_secs(1))
    }

    #[test]
    fn a_broken_file_fixed_in_place_makes_the_network_ready() {
        let dir = tempfile::tempdir().unwrap();
        let bins = tempfile::tempdir().unwrap();
        let runner = ready_runner(bins.path());
        let file = dir.path().join("10-a.conflist");
        std::fs::write(&file, "{broken").unwrap();
        let mut loader = ConfigLoader::new(vec![dir.path().into()], String::new());
        let err = loader.readiness(&runner).unwrap_err();
        assert!(err.contains("10-a.conflist"), "{err}");

        rewrite(&file, &conflist("fixed"));
        loader.readiness(&runner).unwrap();
        assert_eq!(loader.current().unwrap().name, "fixed");

        // Broken again by a rewrite of the same size, at once: within the racy window the stat
        // is not trusted, so this is seen whatever the filesystem's timestamp granularity.
        let same_size = "x".repeat(conflist("fixed").len());
        rewrite(&file, &same_size);
        assert!(loader.readiness(&runner).is_err());
    }

    #[test]
    fn an_earlier_file_fixed_in_place_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let (early, late) = (dir.path().join("10-a.conflist"), dir.path().join("20-b.conflist"));
        std::fs::write(&early, "{broken").unwrap();
        std::fs::write(&late, conflist("b")).unwrap();
        let mut loader = ConfigLoader::new(vec![dir.path().into()], String::new());
        assert_eq!(loader.current().unwrap().name, "b");
        rewrite(&early, &conflist("a"));
        assert_eq!(loader.current().unwrap().name, "a");
    }

    /// With the racy window off, only the stat decides: nothing is re-read while no candidate
    /// changed, and any change to one (size, or timestamps at the same size) is seen.
    #[test]
    fn reads_again_only_when_a_candidate_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (early, late) = (dir.path().join("10-a.conflist"), dir.path().join("20-b.conflist"));
        std::fs::write(&early, "{broken").unwrap();
        std::fs::write(&late, conflist("b")).unwrap();
        let mut loader = ConfigLoader::new(vec![dir.path().into()], String::new());
        loader.racy_window = Duration::ZERO;

        assert_eq!(loader.current().unwrap().name, "b");
        assert_eq!(loader.current().unwrap().name, "b");
        assert_eq!(loader.reads, 1, "read again with nothing changed");
        // Files that are not configs do not count.
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        assert_eq!(loader.current().unwrap().name, "b");
        assert_eq!(loader.reads, 1);

        // The earlier file fixed in place (another size).
        rewrite(&early, &conflist("a"));
        assert_eq!(loader.current().unwrap().name, "a");
        assert_eq!(loader.reads, 2);

        // Broken again at the same size: the timestamps differ. Set apart by hand so the test
        // does not depend on the filesystem's granularity.
        let before = std::fs::metadata(&early).unwrap().modified().unwrap();
        rewrite(&early, &"x".repeat(conflist("a").len()));
        let f = std::fs::OpenOptions::new().write(true).open(&early).unwrap();
        f.set_modified(before + Duration::from_secs(1)).unwrap();
        assert_eq!(loader.current().unwrap().name, "b");
        assert_eq!(loader.reads, 3);
    }
}
