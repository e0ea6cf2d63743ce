//! The part of a `foreach!` call compiled once per call site ([`Site`]):
//! its body running a chunk in this thread, and its captures, elements and
//! values as bytes for workers elsewhere and for the cache. Everything else
//! (planning, driving chunks, output, collecting, `call.rs`) is generic
//! over the elements and the value alone.

use super::call::{Outgoing, run_with};
use super::elements::Elements;
use super::in_place::Slots;
use super::{Finished, remote};
use crate::Error;
use crate::body::capture::Capture;
use crate::body::chunk::{ChunkFn, ChunkOutput, Combine, Unwatched};
use crate::body::foreach_capture::ViewOf;
use crate::protocol::codec;
use crate::rng;
use serde::{Serialize, de::DeserializeOwned};
use std::ops::Range;

/// One chunk to run in this thread, as the driver hands it to the call
/// site's [`Site`].
pub(super) struct ChunkHere<'c, S: Elements, R> {
    /// The chunk's element indices.
    pub(super) range: Range<usize>,
    /// Where indexed elements are taken from.
    pub(super) source: &'c S,
    /// The chunk's elements, when they are not indexed: the first
    /// `range.len()` of these.
    pub(super) elements: &'c mut std::vec::IntoIter<S::Item>,
    /// The output, when values are written in place.
    pub(super) slots: Option<&'c Slots<R>>,
    /// `errors = "stop"`: the chunk ends at its first failure.
    pub(super) stop: bool,
    /// Elements say which random stream is theirs.
    pub(super) seeded: bool,
}

/// The part of a `foreach!` call compiled once per call site: its body
/// running a chunk here (the per-element loop, monomorphic), and its
/// captures travelling to worker processes. Everything else (planning,
/// driving chunks, output capture, the bar, collecting) is generic over the
/// elements and the value alone, and calls this once per chunk.
pub(super) trait Site<S: Elements, R>: Sync {
    /// Runs one chunk in this thread, nothing around its elements.
    fn run(&self, chunk: ChunkHere<'_, S, R>) -> ChunkOutput<R>;
    /// Runs the call's `items` on workers elsewhere.
    fn send(
        &self,
        workers: &remote::Workers<'_>,
        entry: ChunkFn,
        items: Outgoing<'_, S>,
        how: remote::How<'_, R>,
    ) -> Result<Finished<R>, Error>;
    /// Combines two values (when the call combines).
    fn combine(&self, a: R, b: R) -> R;
    /// Appends an element's bytes to `bytes`, for its cache key.
    fn element_bytes(&self, item: &S::Item, bytes: &mut Vec<u8>) -> Result<(), Error>;
    /// The captures' bytes, for the call's cache key.
    fn captures_bytes(&self) -> Result<Vec<u8>, Error>;
    /// A value's bytes, to keep it in the cache.
    fn value_bytes(&self, value: &R) -> Result<Vec<u8>, Error>;
    /// A value kept in the cache.
    fn value_from(&self, bytes: &[u8]) -> Result<R, Error>;
}

/// A call site's body, combine function and captures: its [`Site`].
pub(super) struct Body<'a, 'v, C, E, F, G, V: ?Sized> {
    body: &'a F,
    combine: G,
    vars: &'v V,
    _types: std::marker::PhantomData<fn() -> (C, E)>,
}

impl<'a, 'v, C, E, F, G, V: ?Sized> Body<'a, 'v, C, E, F, G, V> {
    pub(super) fn new(body: &'a F, combine: G, vars: &'v V) -> Self {
        Body {
            body,
            combine,
            vars,
            _types: std::marker::PhantomData,
        }
    }
}

impl<'a, 'v, C, E, R, F, G, V, S> Site<S, R> for Body<'a, 'v, C, E, F, G, V>
where
    C: ViewOf<V> + 'v,
    E: Capture + 'v,
    S: Elements<Item = E::Item<'v>>,
    E::Item<'v>: Serialize,
    V: Sync + ?Sized,
    R: Serialize + DeserializeOwned,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    fn run(&self, chunk: ChunkHere<'_, S, R>) -> ChunkOutput<R> {
        let (body, vars, seeded) = (self.body, self.vars, chunk.seeded);
        // By value, so that the loop holds what it needs in registers.
        let run_element = move |i: usize, e: E::Item<'v>| {
            if seeded {
                rng::set_element(i as u64);
            }
            body(C::view(vars), E::pass(e))
        };
        run_with(chunk, run_element, self.combine, &mut Unwatched)
    }

    fn send(
        &self,
        workers: &remote::Workers<'_>,
        entry: ChunkFn,
        items: Outgoing<'_, S>,
        how: remote::How<'_, R>,
    ) -> Result<Finished<R>, Error> {
        let items: &dyn remote::ChunkSource = match &items {
            Outgoing::Collected(all) => all,
            Outgoing::ByIndex(by_index) => by_index,
        };
        remote::run(workers, entry, &C::sent(self.vars), items, how)
    }

    fn combine(&self, a: R, b: R) -> R {
        self.combine.combine(a, b)
    }

    fn element_bytes(&self, item: &S::Item, bytes: &mut Vec<u8>) -> Result<(), Error> {
        codec::encode_append(item, bytes, "an element (for its cache key)")
    }

    fn captures_bytes(&self) -> Result<Vec<u8>, Error> {
        codec::encode(&C::sent(self.vars), "the captures (for the cache key)")
    }

    fn value_bytes(&self, value: &R) -> Result<Vec<u8>, Error> {
        codec::encode(value, "a value to cache")
    }

    fn value_from(&self, bytes: &[u8]) -> Result<R, Error> {
        codec::decode(bytes, "a cached value")
    }
}
