//! Locks that survive a panic elsewhere.
//!
//! A body's panic is caught and turned into an error, so a lock held while it
//! unwound must not poison the runtime: every lock in futurize is taken
//! through [`lock`], which takes the data whatever happened before.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the data behind futurize's locks stays
/// consistent across a panic (each critical section is a plain update).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
