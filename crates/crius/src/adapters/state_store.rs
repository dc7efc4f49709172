//! Records as `<root>/<kind>/<id>/state.json` (kind: pods, containers).

use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crius_core::ports::StateStore;
use crius_core::store::Record;
use crius_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::atomic::{sync_dir, write_atomic};

pub struct FileStateStore<R> {
    dir: PathBuf,
    _records: PhantomData<fn() -> R>,
}

impl<R> FileStateStore<R> {
    /// Records of one kind under `<root>/<kind>/`.
    pub fn new(root: &Path, kind: &str) -> io::Result<Self> {
        let dir = root.join(kind);
        fs::create_dir_all(&dir)?;
        Ok(FileStateStore { dir, _records: PhantomData })
    }

    fn record_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }
}

impl<R: Record + Serialize + DeserializeOwned> StateStore<R> for FileStateStore<R> {
    fn save(&self, record: &R) -> Result<()> {
        let dir = self.record_dir(record.id());
        let path = dir.join("state.json");
        let fail = |e: io::Error| Error::internal(format!("writing {}", path.display()), e);
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(fail)?;
            sync_dir(&self.dir).map_err(fail)?;
        }
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::internal("encoding a record", e))?;
        write_atomic(&path, &json, 0o600).map_err(fail)
    }

    /// Loads every record. A directory without a record is what a crash during delete
    /// leaves: it is removed. An unreadable record is reported and left for an operator.
    fn load_all(&self) -> Result<Vec<R>> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| Error::internal(format!("reading {}", self.dir.display()), e))?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let path = dir.join("state.json");
            match fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<R>(&bytes) {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "unreadable record; left in place")
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    tracing::warn!(dir = %dir.display(), "directory without a record; removing it");
                    if let Err(e) = fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing an orphan record directory");
                    }
                }
                Err(e) => tracing::error!(path = %path.display(), error = %e, "reading a record"),
            }
        }
        Ok(records)
    }

    fn delete(&self, id: &str) -> Result<()> {
        let dir = self.record_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| Error::internal(format!("syncing {}", self.dir.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!("removing {}", dir.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_core::sandbox::model::{POD_RECORD_VERSION, PodConfig, PodRecord, PodResources, PodState};

    fn record(id: &str) -> PodRecord {
        PodRecord {
            version: POD_RECORD_VERSION,
            id: id.into(),
            config: PodConfig::default(),
            created_at_ns: 1,
            state: PodState::Creating,
            resources: PodResources::default(),
            timeline: Vec::new(),
            network: None,
        }
    }

    #[test]
    fn save_load_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::<PodRecord>::new(dir.path(), "pods").unwrap();
        store.save(&record("a")).unwrap();
        let mut b = record("b");
        b.state = PodState::Ready;
        store.save(&b).unwrap();
        let mut loaded = store.load_all().unwrap();
        loaded.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(loaded, vec![record("a"), b]);
        store.delete("a").unwrap();
        store.delete("a").unwrap();
        assert_eq!(store.load_all().unwrap().len(), 1);
    }

    #[test]
    fn orphan_dirs_are_swept_and_bad_records_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::<PodRecord>::new(dir.path(), "pods").unwrap();
        fs::create_dir_all(dir.path().join("pods/orphan")).unwrap();
        fs::create_dir_all(dir.path().join("pods/bad")).unwrap();
        fs::write(dir.path().join("pods/bad/state.json"), b"{not json").unwrap();
        assert!(store.load_all().unwrap().is_empty());
        assert!(!dir.path().join("pods/orphan").exists());
        assert!(dir.path().join("pods/bad/state.json").exists());
    }
}
