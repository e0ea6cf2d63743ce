//! A local worker's outbox, on the leader's side: the worker's memfd,
//! mapped (`protocol/shared_memory.rs`), and the value the worker left
//! there, lent to its task's slot so that whoever takes the value decodes
//! it where it is, without a copy first.
//!
//! Invariant: the worker writes its outbox only while answering a task it
//! was given after the pool freed it. Before the pool gives it a task,
//! dispatch calls [`Outbox::take_back`], which copies a value still lent
//! into the leader's own memory. A lent value is read under the outbox's
//! lock, and taken back under it, so the worker never writes pages that a
//! read is still using; the silence watcher gives pages back only when no
//! value is lent and the worker runs no task.

use crate::Error;
use crate::backend::slot::{LentBytes, Payload};
use crate::protocol::shared_memory::PeerPages;
use crate::protocol::wire::InboxPlace;
use crate::sync::lock;
use std::sync::{Arc, Mutex};

/// One worker's outbox as the leader maps it.
pub(super) struct Outbox {
    state: Arc<Mutex<State>>,
}

struct State {
    pages: Option<PeerPages>,
    /// The value lent to a slot and not yet read to its end or taken back.
    lent: Option<Arc<Lent>>,
}

/// A value in the outbox: where it is, or, once taken back, its copy.
struct Lent {
    place: InboxPlace,
    copy: Mutex<Option<Vec<u8>>>,
}

/// What a slot holds of a lent value; giving it up ends the loan.
struct Loan {
    state: Arc<Mutex<State>>,
    lent: Arc<Lent>,
}

impl Outbox {
    pub(super) fn new() -> Outbox {
        Outbox {
            state: Arc::new(Mutex::new(State {
                pages: None,
                lent: None,
            })),
        }
    }

    /// The value the worker says waits at `place` (opening its memfd first
    /// if it offers one), lent as a slot's payload. Called by the reader
    /// before it frees the worker.
    pub(super) fn lend(&self, place: &InboxPlace) -> Result<Payload, Error> {
        let mut state = lock(&self.state);
        // Checks the place against the mapping (and maps a new memfd).
        PeerPages::payload(&mut state.pages, place, true)?;
        let lent = Arc::new(Lent {
            place: InboxPlace {
                open: None,
                ..place.clone()
            },
            copy: Mutex::new(None),
        });
        state.lent = Some(lent.clone());
        Ok(Payload::Lent(Box::new(Loan {
            state: self.state.clone(),
            lent,
        })))
    }

    /// The worker is about to get a task, and may then write its outbox: a
    /// value still lent is copied out first.
    pub(super) fn take_back(&self) {
        let mut state = lock(&self.state);
        let Some(lent) = state.lent.take() else {
            return;
        };
        let copy = PeerPages::payload(&mut state.pages, &lent.place, true).map(|bytes| {
            let mut copy = crate::protocol::bulk::encode_buffer(bytes.len());
            copy.extend_from_slice(bytes);
            copy
        });
        // The place was checked when lent, against the same mapping.
        *lock(&lent.copy) = copy.ok();
    }

    /// Gives the pages back when unused for a while and nothing is lent.
    /// Call only while the worker runs no task; passes when busy.
    pub(super) fn release_if_idle(&self) {
        if let Ok(mut state) = self.state.try_lock()
            && state.lent.is_none()
            && let Some(pages) = state.pages.as_mut()
        {
            pages.release_if_idle();
        }
    }
}

impl LentBytes for Loan {
    fn read(&self, read: &mut dyn FnMut(&[u8])) {
        let mut state = lock(&self.state);
        let still_lent = state
            .lent
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &self.lent));
        if still_lent
            && let Ok(bytes) = PeerPages::payload(&mut state.pages, &self.lent.place, true)
        {
            return read(bytes);
        }
        drop(state);
        // Taken back: the copy (empty if the copy could not be made, which
        // then fails to decode, as a cut answer would).
        let copy = lock(&self.lent.copy);
        read(copy.as_deref().unwrap_or_default());
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state
            .lent
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &self.lent))
        {
            state.lent = None;
        }
        drop(state);
        if let Some(copy) = lock(&self.lent.copy).take() {
            crate::protocol::bulk::reuse(copy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::shared_memory::{OUTBOX_NAME, SharedPages};

    #[test]
    fn a_lent_value_is_read_in_place_until_taken_back_then_from_its_copy() {
        // This process plays the worker too: it writes its own outbox.
        let mut pages = None;
        let writer = SharedPages::with_room(&mut pages, 100, OUTBOX_NAME).expect("memfd");
        let first = writer.place(&[b"first value"]).remove(0);
        let outbox = Outbox::new();
        let value = outbox.lend(&first).unwrap();
        assert_eq!(value.with_bytes(<[u8]>::to_vec), b"first value");
        assert!(lock(&outbox.state).lent.is_some());
        // The worker gets a task: the value is copied out, and the worker
        // may write its outbox again.
        outbox.take_back();
        assert!(lock(&outbox.state).lent.is_none());
        writer.answered();
        let second = writer.place(&[b"other bytes"]).remove(0);
        assert_eq!(value.with_bytes(<[u8]>::to_vec), b"first value", "the copy");
        let next = outbox.lend(&second).unwrap();
        assert_eq!(next.with_bytes(<[u8]>::to_vec), b"other bytes");
        // Giving a value up ends its loan (and only its own).
        drop(value);
        assert!(lock(&outbox.state).lent.is_some());
        drop(next);
        assert!(lock(&outbox.state).lent.is_none());
    }

    #[test]
    fn a_place_outside_the_outbox_is_refused() {
        let mut pages = None;
        let writer = SharedPages::with_room(&mut pages, 100, OUTBOX_NAME).expect("memfd");
        let mut place = writer.place(&[b"abc"]).remove(0);
        place.len = u64::MAX;
        assert!(Outbox::new().lend(&place).is_err());
    }
}
