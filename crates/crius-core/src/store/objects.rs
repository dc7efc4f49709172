//! The object stores: every committed pod or container, by id, with a lock per object for the
//! verbs that change it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::error::Result;

/// What a store keeps: a record with an id.
pub trait Record: Clone + Send + Sync + 'static {
    fn id(&self) -> &str;
}

pub struct Entry<R> {
    record: Mutex<R>,
    /// Set by the exit watch on the object's main process, so List and Status never look at /proc.
    process_exited: AtomicBool,
    /// Serialises the verbs that change this object (Stop, Remove, ...).
    op: Mutex<()>,
}

impl<R: Record> Entry<R> {
    pub fn new(record: R) -> Self {
        Entry { record: Mutex::new(record), process_exited: AtomicBool::new(false), op: Mutex::new(()) }
    }

    pub fn snapshot(&self) -> R {
        self.lock_record().clone()
    }

    pub fn id(&self) -> String {
        self.lock_record().id().to_string()
    }

    /// Reads part of the record without cloning all of it.
    pub fn read<T>(&self, f: impl FnOnce(&R) -> T) -> T {
        f(&self.lock_record())
    }

    /// Changes the record on disk first (through `save`), then in memory: memory never shows a
    /// state that a crash would lose. The record stays locked throughout, so two updates (a
    /// start and an exit, say) never lose one another.
    pub fn update_persisted(&self, save: impl FnOnce(&R) -> Result<()>, f: impl FnOnce(&mut R)) -> Result<()> {
        let mut current = self.lock_record();
        let mut next = current.clone();
        f(&mut next);
        save(&next)?;
        *current = next;
        Ok(())
    }

    /// Returns whether this call was the one that marked it (so a transition is acted on once).
    pub fn mark_process_exited(&self) -> bool {
        !self.process_exited.swap(true, Ordering::AcqRel)
    }

    pub fn process_exited(&self) -> bool {
        self.process_exited.load(Ordering::Acquire)
    }

    pub fn lock_op(&self) -> MutexGuard<'_, ()> {
        self.op.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_record(&self) -> MutexGuard<'_, R> {
        // Records are replaced whole, so a poisoned lock still holds a consistent one.
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct ObjectStore<R> {
    objects: RwLock<BTreeMap<String, Arc<Entry<R>>>>,
    what: &'static str,
}

impl<R: Record> ObjectStore<R> {
    pub fn new(what: &'static str) -> Self {
        ObjectStore { objects: RwLock::default(), what }
    }

    pub fn insert(&self, entry: Arc<Entry<R>>) {
        let id = entry.id();
        self.write().insert(id, entry);
    }

    pub fn remove(&self, id: &str) {
        self.write().remove(id);
    }

    /// The object whose id is `id` or uniquely starts with it.
    pub fn find(&self, id: &str) -> Result<Option<Arc<Entry<R>>>> {
        let objects = self.read();
        Ok(super::resolve_prefix(&objects, id, self.what)?.map(|(_, e)| e.clone()))
    }

    pub fn all(&self) -> Vec<Arc<Entry<R>>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Entry<R>>>> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Entry<R>>>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }
}
