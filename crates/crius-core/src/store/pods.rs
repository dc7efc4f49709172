//! The pod store: every committed pod (Ready or Stopped), by id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::error::Result;
use crate::ports::PodStateStore;
use crate::sandbox::model::PodRecord;

pub struct PodEntry {
    record: Mutex<PodRecord>,
    /// Set by the exit watch on the pod init, so List and Status never look at /proc.
    init_exited: AtomicBool,
    /// Serialises Stop and Remove of this pod.
    op: Mutex<()>,
}

impl PodEntry {
    pub fn new(record: PodRecord) -> Self {
        PodEntry { record: Mutex::new(record), init_exited: AtomicBool::new(false), op: Mutex::new(()) }
    }

    pub fn snapshot(&self) -> PodRecord {
        self.lock_record().clone()
    }

    pub fn id(&self) -> String {
        self.lock_record().id.clone()
    }

    /// Reads part of the record without cloning all of it.
    pub fn read<T>(&self, f: impl FnOnce(&PodRecord) -> T) -> T {
        f(&self.lock_record())
    }

    /// Changes the record on disk first, then in memory: memory never shows a state that a crash
    /// would lose.
    pub fn update_persisted(&self, store: &dyn PodStateStore, f: impl FnOnce(&mut PodRecord)) -> Result<()> {
        let mut next = self.snapshot();
        f(&mut next);
        store.save(&next)?;
        *self.lock_record() = next;
        Ok(())
    }

    pub fn mark_init_exited(&self) {
        self.init_exited.store(true, Ordering::Release);
    }

    pub fn init_exited(&self) -> bool {
        self.init_exited.load(Ordering::Acquire)
    }

    pub fn lock_op(&self) -> MutexGuard<'_, ()> {
        self.op.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_record(&self) -> MutexGuard<'_, PodRecord> {
        // Records are replaced whole, so a poisoned lock still holds a consistent one.
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub struct PodStore {
    pods: RwLock<BTreeMap<String, Arc<PodEntry>>>,
}

impl PodStore {
    pub fn insert(&self, entry: Arc<PodEntry>) {
        let id = entry.id();
        self.write().insert(id, entry);
    }

    pub fn remove(&self, id: &str) {
        self.write().remove(id);
    }

    /// The pod whose id is `id` or uniquely starts with it.
    pub fn find(&self, id: &str) -> Result<Option<Arc<PodEntry>>> {
        let pods = self.read();
        Ok(super::resolve_prefix(&pods, id, "pod sandbox")?.map(|(_, e)| e.clone()))
    }

    pub fn all(&self) -> Vec<Arc<PodEntry>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<PodEntry>>> {
        self.pods.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<PodEntry>>> {
        self.pods.write().unwrap_or_else(|p| p.into_inner())
    }
}
