//! In-memory stores, the only place List and Status read from: a map by id (ordered, so an id
//! prefix is a range), a name index, and name reservations that are RAII guards.

mod names;
mod objects;

pub use names::{NameIndex, NameReservation};
pub use objects::{Entry, ObjectStore, Record};

use crate::container::model::ContainerRecord;
use crate::sandbox::model::PodRecord;

pub type PodEntry = Entry<PodRecord>;
pub type PodStore = ObjectStore<PodRecord>;
pub type ContainerEntry = Entry<ContainerRecord>;
pub type ContainerStore = ObjectStore<ContainerRecord>;

impl Record for PodRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Record for ContainerRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Finds the one key that is `id` or starts with it. `what` names the kind of object for errors.
pub(crate) fn resolve_prefix<'a, V>(
    map: &'a BTreeMap<String, V>,
    id: &str,
    what: &str,
) -> Result<Option<(&'a String, &'a V)>> {
    if let Some((key, value)) = map.get_key_value(id) {
        return Ok(Some((key, value)));
    }
    let mut matches = map.range(id.to_string()..).take_while(|(key, _)| key.starts_with(id));
    let first = matches.next();
    if let Some((second, _)) = matches.next() {
        let first_id = first.map(|(k, _)| k.as_str()).unwrap_or_default();
        return Err(Error::invalid(format!(
            "{what} id prefix {id:?} is ambiguous: it matches {first_id} and {second} (and maybe more); give more characters"
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_resolution() {
        let mut m = BTreeMap::new();
        m.insert("abc1".to_string(), 1);
        m.insert("abc2".to_string(), 2);
        m.insert("abd".to_string(), 3);
        assert_eq!(resolve_prefix(&m, "abd", "pod").unwrap().map(|(_, v)| *v), Some(3));
        assert_eq!(resolve_prefix(&m, "ab", "pod").unwrap_err().kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(resolve_prefix(&m, "abc2", "pod").unwrap().map(|(_, v)| *v), Some(2));
        assert_eq!(resolve_prefix(&m, "abd", "pod").unwrap().map(|(k, _)| k.as_str()), Some("abd"));
        assert!(resolve_prefix(&m, "x", "pod").unwrap().is_none());
        // An exact id wins even when it is also the prefix of another.
        m.insert("abc".to_string(), 4);
        assert_eq!(resolve_prefix(&m, "abc", "pod").unwrap().map(|(_, v)| *v), Some(4));
    }
}
