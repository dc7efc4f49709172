//! SELinux MCS levels of pods. Each pod whose options give no level gets two categories no
//! other live pod of the node holds (`s0:c123,c456`), so that under the container policy the
//! processes of one pod cannot touch the files of another (what go-selinux does for containerd
//! and CRI-O). Levels are counted, not owned: pods that were given the same level share it on
//! purpose (a shared volume), and a picked level is never one of those.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Categories c0..c1023, as go-selinux picks them.
const CATEGORIES: u32 = 1024;
/// Random picks before walking every pair: a node with a few hundred pods finds a free one at
/// once; the walk makes a nearly full range still find the last free pair.
const RANDOM_TRIES: usize = 32;

pub struct McsLevels {
    categories: u32,
    held: Mutex<HashMap<String, usize>>,
}

impl Default for McsLevels {
    fn default() -> Self {
        Self::with_categories(CATEGORIES)
    }
}

impl McsLevels {
    fn with_categories(categories: u32) -> Self {
        McsLevels { categories, held: Mutex::default() }
    }

    /// A level that no pod holds, held from now on (until `release`).
    pub fn pick(&self) -> Result<String> {
        let n = self.categories;
        let mut held = self.lock();
        for _ in 0..RANDOM_TRIES {
            let (a, b) = (random()? % n, random()? % n);
            if a != b {
                let level = level(a.min(b), a.max(b));
                if !held.contains_key(&level) {
                    held.insert(level.clone(), 1);
                    return Ok(level);
                }
            }
        }
        let start = random()? % n;
        for a in (0..n).map(|i| (start + i) % n) {
            for b in a + 1..n {
                let level = level(a, b);
                if !held.contains_key(&level) {
                    held.insert(level.clone(), 1);
                    return Ok(level);
                }
            }
        }
        Err(Error::unavailable(format!(
            "every SELinux MCS level (pairs of categories c0..c{}) is held by a pod sandbox on this node: \
             remove pod sandboxes that are no longer needed",
            n - 1
        )))
    }

    /// Holds `level` once more: one a pod was given, or one found in a pod's record at start-up.
    pub fn hold(&self, level: &str) {
        *self.lock().entry(canonical(level)).or_default() += 1;
    }

    /// Releases `level` (held already: picked, or `hold`) when the guard drops, unless kept.
    pub fn guard(&self, level: Option<String>) -> LevelHold<'_> {
        LevelHold { levels: self, level, kept: false }
    }

    /// One holder of `level` is gone; at none, it can be picked again.
    pub fn release(&self, level: &str) {
        let mut held = self.lock();
        let key = canonical(level);
        if let Some(count) = held.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&key);
            }
        }
    }

    /// How many pods hold `level`.
    #[cfg(test)]
    pub(crate) fn holders(&self, level: &str) -> usize {
        self.lock().get(&canonical(level)).copied().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Single inserts and removes: a panic cannot leave the map half-updated.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A level held while a pod is being made: released if the pod is not.
#[must_use = "the level is released when the hold drops"]
pub struct LevelHold<'a> {
    levels: &'a McsLevels,
    level: Option<String>,
    kept: bool,
}

impl LevelHold<'_> {
    pub fn level(&self) -> Option<&str> {
        self.level.as_deref()
    }

    /// The pod exists: its level stays held until the pod is removed.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for LevelHold<'_> {
    fn drop(&mut self) {
        if let (false, Some(level)) = (self.kept, &self.level) {
            self.levels.release(level);
        }
    }
}

fn level(a: u32, b: u32) -> String {
    format!("s0:c{a},c{b}")
}

/// `s0:c9,c4` and `s0:c4,c9` are one level; anything not of that shape is kept as it is.
fn canonical(level: &str) -> String {
    let pair = level.strip_prefix("s0:").and_then(|cats| {
        let (a, b) = cats.split_once(',')?;
        Some((a.strip_prefix('c')?.parse::<u32>().ok()?, b.strip_prefix('c')?.parse::<u32>().ok()?))
    });
    match pair {
        Some((a, b)) if a != b => self::level(a.min(b), a.max(b)),
        _ => level.to_string(),
    }
}

fn random() -> Result<u32> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal("picking an SELinux MCS level", e.to_string()))?;
    Ok(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::ErrorKind;

    #[test]
    fn picked_levels_are_two_distinct_categories_in_range() {
        let levels = McsLevels::default();
        for _ in 0..200 {
            let level = levels.pick().unwrap();
            let (a, b) = level.strip_prefix("s0:c").unwrap().split_once(",c").unwrap();
            let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
            assert!(a < b && b < CATEGORIES, "{level}");
        }
    }

    #[test]
    fn every_pair_is_found_before_the_range_is_exhausted() {
        // 6 categories: 15 pairs, so the random picks collide and the walk finds the rest.
        let levels = McsLevels::with_categories(6);
        let picked: HashSet<String> = (0..15).map(|_| levels.pick().unwrap()).collect();
        assert_eq!(picked.len(), 15);
        let err = levels.pick().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("remove pod sandboxes"), "{err}");
        levels.release("s0:c2,c4");
        assert_eq!(levels.pick().unwrap(), "s0:c2,c4");
    }

    #[test]
    fn held_levels_are_never_picked_until_released_by_every_holder() {
        let levels = McsLevels::with_categories(3);
        // Recovered pods, and two pods given the same level (written the other way round once).
        levels.hold("s0:c0,c1");
        levels.hold("s0:c0,c2");
        levels.hold("s0:c2,c0");
        assert_eq!(levels.pick().unwrap(), "s0:c1,c2");
        levels.release("s0:c0,c2");
        assert!(levels.pick().is_err(), "one pod still holds s0:c0,c2");
        levels.release("s0:c0,c2");
        assert_eq!(levels.pick().unwrap(), "s0:c0,c2");
        // Releasing what nobody holds is harmless.
        levels.release("s0:c9,c10");
        levels.release("s0");
    }

    #[test]
    fn a_hold_that_is_not_kept_releases_its_level() {
        let levels = McsLevels::with_categories(2);
        let only = levels.pick().unwrap();
        drop(levels.guard(Some(only.clone())));
        assert_eq!(levels.pick().unwrap(), only);
        let hold = levels.guard(Some(only.clone()));
        assert_eq!(hold.level(), Some(only.as_str()));
        hold.keep();
        assert!(levels.pick().is_err());
    }
}
