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

use super::atomic::{sync_dir, write_atomic, write_replace_volatile};

/// A durable record's amendment (`amend`), next to it: read in its place while it parses, and
/// removed by the next write of the record, before that write (so the one dir fsync of a
/// durable save commits both, and a stale amendment never outlives a newer record).
const AMENDED: &str = "state.amended.json";

pub struct FileStateStore<R> {
    dir: PathBuf,
    /// Where intermediate records go (a tmpfs under the volatile state dir): they only matter
    /// until a reboot, which wipes what they describe, so they cost no disk flush.
    volatile_dir: Option<PathBuf>,
    _records: PhantomData<fn() -> R>,
}

impl<R> FileStateStore<R> {
    /// Records of one kind under `<root>/<kind>/`.
    pub fn new(root: &Path, kind: &str) -> io::Result<Self> {
        let dir = root.join(kind);
        fs::create_dir_all(&dir)?;
        Ok(FileStateStore { dir, volatile_dir: None, _records: PhantomData })
    }

    /// Intermediate records (`save_volatile`) go to `<dir>/<id>.json` instead.
    pub fn with_volatile_dir(mut self, dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        self.volatile_dir = Some(dir);
        Ok(self)
    }

    fn volatile_path(&self, id: &str) -> Option<PathBuf> {
        self.volatile_dir.as_ref().map(|d| d.join(format!("{id}.json")))
    }

    fn remove_volatile(&self, id: &str) -> Result<()> {
        match self.volatile_path(id).map(fs::remove_file) {
            Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::internal(format!("removing the intermediate record of {id}"), e))
            }
            _ => Ok(()),
        }
    }

    /// Intermediate records of objects that have no durable record yet.
    fn load_volatile(&self, durable: &[String]) -> Vec<R>
    where
        R: DeserializeOwned + Record,
    {
        let Some(dir) = &self.volatile_dir else { return Vec::new() };
        let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                // A write that a crash cut short: no one's record.
                if e.file_name().to_string_lossy().starts_with('.') {
                    let _ = fs::remove_file(&path);
                    return None;
                }
                let record = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<R>(&b).ok());
                if record.is_none() {
                    tracing::error!(path = %path.display(), "unreadable intermediate record; left in place");
                }
                record
            })
            .filter(|r| !durable.iter().any(|id| id == r.id()))
            .collect()
    }

    fn record_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }
}

impl<R: Record + Serialize> FileStateStore<R> {
    fn write(&self, record: &R, durable: bool) -> Result<()> {
        let dir = self.record_dir(record.id());
        let path = dir.join("state.json");
        let fail = |e: io::Error| Error::internal(format!("writing {}", path.display()), e);
        // The record's directory may have been made by someone else (the pod's files) without a
        // flush: its first durable record flushes the entry in <root>/<kind> too, or a power
        // loss could lose a pod whose record was on disk.
        let first_durable = durable && !path.exists();
        fs::create_dir_all(&dir).map_err(fail)?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::internal("encoding a record", e))?;
        remove_if_present(&dir.join(AMENDED)).map_err(fail)?;
        if durable { write_atomic(&path, &json, 0o600) } else { write_replace_volatile(&path, &json, 0o600) }
            .map_err(fail)?;
        if first_durable {
            sync_dir(&self.dir).map_err(fail)?;
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The amendment of the record in `dir`, if there is a readable one of the same object. One
/// that a power loss tore is removed: the durable record is the truth then.
fn read_amended<R: DeserializeOwned + Record>(dir: &Path, durable: &R) -> Option<R> {
    let path = dir.join(AMENDED);
    let bytes = fs::read(&path).ok()?;
    match serde_json::from_slice::<R>(&bytes) {
        Ok(amended) if amended.id() == durable.id() => Some(amended),
        _ => {
            tracing::warn!(path = %path.display(), "unreadable record amendment; using the record");
            let _ = fs::remove_file(&path);
            None
        }
    }
}

impl<R: Record + Serialize + DeserializeOwned> StateStore<R> for FileStateStore<R> {
    fn save(&self, record: &R) -> Result<()> {
        self.write(record, true)?;
        self.remove_volatile(record.id())
    }

    fn save_unflushed(&self, record: &R) -> Result<()> {
        self.write(record, false)?;
        self.remove_volatile(record.id())
    }

    /// Without a flush: a power loss leaves either the durable record or this one (a torn
    /// amendment does not parse, and the durable record is read instead).
    fn amend(&self, record: &R) -> Result<()> {
        let path = self.record_dir(record.id()).join(AMENDED);
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::internal("encoding a record", e))?;
        write_replace_volatile(&path, &json, 0o600)
            .map_err(|e| Error::internal(format!("writing {}", path.display()), e))
    }

    fn save_volatile(&self, record: &R) -> Result<()> {
        match self.volatile_path(record.id()) {
            Some(path) => {
                let json = serde_json::to_vec(record).map_err(|e| Error::internal("encoding a record", e))?;
                write_replace_volatile(&path, &json, 0o600)
                    .map_err(|e| Error::internal(format!("writing {}", path.display()), e))
            }
            None => self.write(record, false),
        }
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
                    Ok(record) => records.push(read_amended(&dir, &record).unwrap_or(record)),
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
        let durable: Vec<String> = records.iter().map(|r| r.id().to_string()).collect();
        records.extend(self.load_volatile(&durable));
        Ok(records)
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.remove_volatile(id)?;
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
            stopping: false,
            selinux_level: None,
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
    fn intermediate_records_live_apart_until_the_durable_one() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("run");
        let store =
            FileStateStore::<PodRecord>::new(dir.path(), "pods").unwrap().with_volatile_dir(vol.clone()).unwrap();
        store.save_volatile(&record("a")).unwrap();
        assert!(vol.join("a.json").exists());
        assert!(!dir.path().join("pods/a/state.json").exists());
        assert_eq!(store.load_all().unwrap(), vec![record("a")]);
        let mut ready = record("a");
        ready.state = PodState::Ready;
        store.save(&ready).unwrap();
        assert!(!vol.join("a.json").exists());
        assert_eq!(store.load_all().unwrap(), vec![ready]);
        store.save_volatile(&record("b")).unwrap();
        store.delete("b").unwrap();
        assert!(!vol.join("b.json").exists());
        assert_eq!(store.load_all().unwrap().len(), 1);
    }

    #[test]
    fn an_amendment_is_read_in_place_of_the_record_until_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::<PodRecord>::new(dir.path(), "pods").unwrap();
        let mut ready = record("a");
        ready.state = PodState::Ready;
        store.save(&ready).unwrap();
        let mut amended = ready.clone();
        amended.timeline =
            vec![crius_core::sandbox::model::StepTiming { step: "state_ready".into(), start_us: 5, duration_us: 7 }];
        store.amend(&amended).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![amended.clone()]);
        // The durable record is untouched by it.
        let durable: PodRecord =
            serde_json::from_slice(&fs::read(dir.path().join("pods/a/state.json")).unwrap()).unwrap();
        assert_eq!(durable, ready);

        // A later save supersedes it, and leaves no amendment behind.
        let mut stopped = amended.clone();
        stopped.state = PodState::Stopped;
        store.save(&stopped).unwrap();
        assert!(!dir.path().join("pods/a").join(AMENDED).exists());
        assert_eq!(store.load_all().unwrap(), vec![stopped.clone()]);

        // One torn by a power loss is dropped for the durable record.
        fs::write(dir.path().join("pods/a").join(AMENDED), b"{\"version\": 1, \"id\"").unwrap();
        assert_eq!(store.load_all().unwrap(), vec![stopped]);
        assert!(!dir.path().join("pods/a").join(AMENDED).exists());
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
