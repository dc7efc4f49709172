//! Small synchronisation helpers.

use std::sync::{Mutex, MutexGuard};

/// Locks a std mutex, taking the data even if a thread panicked while holding it: every critical
/// section here leaves the state consistent at each step, and a streaming session must not be
/// brought down by an unrelated panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
