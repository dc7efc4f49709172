//! Name reservations: a name belongs to one object id from the moment creation starts, so two
//! concurrent creations with the same metadata cannot both proceed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

#[derive(Clone, Default)]
pub struct NameIndex {
    names: Arc<Mutex<HashMap<String, String>>>,
    what: &'static str,
}

impl NameIndex {
    pub fn new(what: &'static str) -> Self {
        NameIndex { names: Arc::default(), what }
    }

    /// Reserves `name` for `id`. The reservation is released when the guard drops, unless kept.
    pub fn reserve(&self, name: &str, id: &str) -> Result<NameReservation> {
        let mut names = self.lock();
        if let Some(holder) = names.get(name) {
            return Err(Error::already_exists(format!(
                "{} name {name:?} is reserved for {} {holder}; remove that {} first, or use another attempt number",
                self.what, self.what, self.what
            )));
        }
        names.insert(name.to_string(), id.to_string());
        Ok(NameReservation { index: self.clone(), name: name.to_string(), id: id.to_string(), kept: false })
    }

    /// Records a name found on disk at start-up.
    pub fn insert(&self, name: &str, id: &str) {
        self.lock().insert(name.to_string(), id.to_string());
    }

    /// Releases `name` if it is still held by `id`.
    pub fn release(&self, name: &str, id: &str) {
        let mut names = self.lock();
        if names.get(name).is_some_and(|holder| holder == id) {
            names.remove(name);
        }
    }

    /// Releases whatever name `id` holds (when its name cannot be rebuilt).
    pub fn release_id(&self, id: &str) {
        self.lock().retain(|_, holder| holder != id);
    }

    pub fn holder(&self, name: &str) -> Option<String> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts and
        // removes), so a poisoned lock is still usable.
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[must_use = "the name is released when the reservation drops"]
pub struct NameReservation {
    index: NameIndex,
    name: String,
    id: String,
    kept: bool,
}

impl NameReservation {
    /// The object now exists: the name stays reserved until it is removed.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for NameReservation {
    fn drop(&mut self) {
        if !self.kept {
            self.index.release(&self.name, &self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_reservation_names_the_holder() {
        let idx = NameIndex::new("pod sandbox");
        let r = idx.reserve("a_b_c_0", "id1").unwrap();
        let err = idx.reserve("a_b_c_0", "id2").err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("id1"), "{err}");
        drop(r);
        idx.reserve("a_b_c_0", "id2").unwrap().keep();
        assert_eq!(idx.holder("a_b_c_0").as_deref(), Some("id2"));
    }

    #[test]
    fn release_only_by_the_holder() {
        let idx = NameIndex::new("pod sandbox");
        idx.insert("n", "id1");
        idx.release("n", "id2");
        assert_eq!(idx.holder("n").as_deref(), Some("id1"));
        idx.release("n", "id1");
        assert_eq!(idx.holder("n"), None);
    }
}
