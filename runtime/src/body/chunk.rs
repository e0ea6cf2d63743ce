//! A chunk of a `foreach!` call, run where it stands: every element under
//! its own panic catcher, values collected or combined in element order,
//! and the entry function through which a worker process runs a chunk.
//!
//! Invariant: one element's failure never takes its chunk's other values
//! with it; under `errors = "stop"` the chunk ends at its first failure.

use super::capture::{Capture, SendsBack, TagView};
use super::foreach_capture::EachCapture;
use crate::protocol::shared_memory::PeerPages;
use crate::protocol::wire::InboxPlace;
use crate::protocol::{Output, codec, identity};
use crate::rng::{self, Streams};
use crate::{Error, Panic};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How the values of one chunk are combined, if at all.
pub trait Combine<R>: Copy + Send + Sync {
    /// Whether values are combined.
    const ACTIVE: bool;
    /// Combines two values (never called when not active).
    fn combine(&self, a: R, b: R) -> R;
}

/// No combining: values are collected.
#[derive(Clone, Copy)]
pub struct NoCombine;

impl<R> Combine<R> for NoCombine {
    const ACTIVE: bool = false;
    fn combine(&self, a: R, _: R) -> R {
        a
    }
}

/// Combining with a user function, `combine = |a, b| ...`.
#[derive(Clone, Copy)]
pub struct WithCombine<G>(G);

impl<R, G: Fn(R, R) -> R + Copy + Send + Sync> Combine<R> for WithCombine<G> {
    const ACTIVE: bool = true;
    fn combine(&self, a: R, b: R) -> R {
        (self.0)(a, b)
    }
}

impl<G: Copy> WithCombine<G> {
    /// The combine function, for the macro's no-capture check.
    pub fn __function(&self) -> G {
        self.0
    }
}

/// Types a `combine` function by the body's value and checks that it
/// captures nothing.
pub fn __combine_with<C, E, R, F, G>(_: &C, _: &E, _: &F, combine: G) -> WithCombine<G>
where
    C: TagView,
    E: TagView,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R,
    G: Fn(R, R) -> R + Copy,
{
    WithCombine(combine)
}

/// No `combine` option.
pub fn __no_combine() -> NoCombine {
    NoCombine
}

/// Why one element failed, as it travels back from a worker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Failure {
    /// Its body panicked.
    Panicked(Panic),
    /// It ran longer than `timeout` (found when it returned: a body in this
    /// process cannot be stopped).
    TimedOut {
        /// The time limit as the user wrote it.
        after: String,
    },
}

impl Failure {
    pub(crate) fn into_error(self, label: Option<&str>, index: usize) -> Error {
        let label = label.map(str::to_string);
        match self {
            Failure::Panicked(panic) => Error::Panicked {
                panic,
                label,
                index: Some(index),
            },
            Failure::TimedOut { after } => Error::Timeout {
                after,
                label,
                index: Some(index),
            },
        }
    }
}

/// What one chunk produced.
#[derive(Serialize, Deserialize, Debug)]
pub struct ChunkOutput<R> {
    /// The values of the elements that succeeded, in element order (empty
    /// when combining); plain numbers travel as their bytes.
    #[serde(with = "crate::protocol::forms::chunk_values")]
    pub values: Vec<R>,
    /// The combined value of the elements that succeeded (when combining).
    pub folded: Option<R>,
    /// The elements that failed: position in the chunk, and why.
    pub failures: Vec<(u32, Failure)>,
    /// A chunk handed back at its job's time signal (`SIGUSR1` from
    /// `--signal`): how many of its elements ran; the rest run elsewhere.
    pub handed_back: Option<u32>,
    /// The `log` records its elements sent from another process, in order
    /// (kept with a cached call's values; on the leader only).
    #[serde(skip)]
    pub logs: Vec<crate::protocol::wire::LogRecord>,
    /// The records are to be logged when the chunk's output is shown (a
    /// chunk whose values came from the cache); else they were logged as
    /// they came.
    #[serde(skip)]
    pub replay_logs: bool,
    /// What the chunk's elements printed, in element order (filled in where
    /// the chunk ran, or from the worker's reply).
    #[serde(skip)]
    pub output: Output,
}

impl<R> ChunkOutput<R> {
    /// The output of `values` and `failures` (and a combined value), with
    /// nothing printed, logged or handed back yet.
    pub(crate) fn of(values: Vec<R>, folded: Option<R>, failures: Vec<(u32, Failure)>) -> Self {
        ChunkOutput {
            values,
            folded,
            failures,
            handed_back: None,
            logs: Vec::new(),
            replay_logs: false,
            output: Output::default(),
        }
    }

    /// The element index of this chunk's first failure, for a chunk that
    /// starts at element `start`.
    pub(crate) fn first_failure(&self, start: usize) -> Option<usize> {
        self.failures.first().map(|(p, _)| start + *p as usize)
    }

    /// How many elements ran (under `errors = "stop"` a chunk ends at its
    /// first failure; a stopped call ends chunks early).
    pub(crate) fn ran(&self) -> usize {
        self.values.len() + self.failures.len()
    }

    /// Checks an answer for a chunk of `elements` from another process: no
    /// more values and failures than elements, failure positions increasing
    /// and among the elements that ran, values or a combined value, not
    /// both. The complaint says what is wrong.
    pub(crate) fn check(&self, elements: usize) -> Result<(), String> {
        let (values, failures) = (self.values.len(), self.failures.len());
        if values + failures > elements {
            return Err(format!(
                "{values} values and {failures} failures for {elements} elements"
            ));
        }
        if self.folded.is_some() && values > 0 {
            return Err(format!("both a combined value and {values} values"));
        }
        // Without a combined value, every element up to the last that ran
        // is a value or a failure.
        let ran = if self.folded.is_some() {
            elements
        } else {
            self.ran()
        };
        let mut last = None;
        for &(position, _) in &self.failures {
            if position as usize >= ran || last.is_some_and(|l| position <= l) {
                return Err(format!(
                    "failure positions {:?} (not increasing within the {ran} elements that ran)",
                    self.failures.iter().map(|(p, _)| p).collect::<Vec<_>>()
                ));
            }
            last = Some(position);
        }
        Ok(())
    }
}

/// What happens around each element of a chunk: progress, time limits.
/// Generic, so that a chunk with nothing around its elements ([`Unwatched`])
/// costs nothing per element.
pub(crate) trait Watch {
    /// False for a watch that does nothing: the loop then skips its
    /// bookkeeping.
    const ACTIVE: bool = true;
    /// Element `position` of the chunk starts.
    fn started(&mut self, position: usize);
    /// Element `position` ended; a failure here replaces its value.
    fn finished(&mut self, position: usize) -> Option<Failure>;
}

/// Nothing around elements.
pub(crate) struct Unwatched;

impl Watch for Unwatched {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn started(&mut self, _: usize) {}
    #[inline(always)]
    fn finished(&mut self, _: usize) -> Option<Failure> {
        None
    }
}

/// What a worker process does around each element of a chunk (which
/// element runs, for logs and the timer; progress reports): the object-safe
/// face of [`Watch`] that a chunk entry function takes.
pub trait ElementEvents {
    /// The chunk starts: whether to be told of every element. When not,
    /// the chunk's loop only writes each element's position where
    /// [`running_position`] reads it (a store instead of two calls).
    fn chunk_starts(&mut self) -> bool {
        true
    }
    /// Element `position` of the chunk starts.
    fn started(&mut self, position: usize);
    /// Element `position` ended.
    fn finished(&mut self, position: usize);
}

/// The position in its chunk of the element a worker runs, when its
/// [`ElementEvents`] are not told of every element.
static RUNNING_POSITION: AtomicUsize = AtomicUsize::new(0);

/// The position in its chunk of the element a worker runs now (see
/// [`ElementEvents::chunk_starts`]).
pub(crate) fn running_position() -> usize {
    RUNNING_POSITION.load(Ordering::Relaxed)
}

/// A worker's [`ElementEvents`] as a [`Watch`]: told of every element, or
/// only the position written.
struct Events<'a> {
    events: &'a mut dyn ElementEvents,
    every: bool,
}

impl Watch for Events<'_> {
    #[inline]
    fn started(&mut self, position: usize) {
        if self.every {
            self.events.started(position);
        } else {
            RUNNING_POSITION.store(position, Ordering::Relaxed);
        }
    }
    #[inline]
    fn finished(&mut self, position: usize) -> Option<Failure> {
        if self.every {
            self.events.finished(position);
        }
        None
    }
}

/// Runs a chunk's elements through `run`. One panic catcher covers a run of
/// elements: after a panic the failure is recorded and the rest of the chunk
/// goes on under a new catcher (unless `stop_at_failure`).
pub(crate) fn run_chunk<T, R, G: Combine<R>, W: Watch>(
    elements: impl Iterator<Item = T>,
    mut run: impl FnMut(T) -> R,
    combine: G,
    stop_at_failure: bool,
    stopped: impl Fn(usize) -> bool,
    watch: &mut W,
) -> ChunkOutput<R> {
    let mut elements = elements.enumerate();
    let mut out = ChunkOutput::of(
        Vec::with_capacity(if G::ACTIVE { 0 } else { elements.size_hint().0 }),
        None,
        Vec::new(),
    );
    loop {
        let mut position = 0;
        // Whether the watch heard of the current element's end (a panic in
        // `combine` comes after it).
        let ended = std::cell::Cell::new(false);
        let outcome = super::catch(|| {
            for (p, element) in elements.by_ref() {
                if stopped(p) {
                    return;
                }
                position = p;
                if W::ACTIVE {
                    ended.set(false);
                    watch.started(p);
                }
                let v = run(element);
                if W::ACTIVE {
                    ended.set(true);
                }
                if let Some(failure) = watch.finished(p) {
                    out.failures.push((p as u32, failure));
                    if stop_at_failure {
                        return;
                    }
                    continue;
                }
                if G::ACTIVE {
                    out.folded = Some(match out.folded.take() {
                        None => v,
                        Some(acc) => combine.combine(acc, v),
                    });
                } else {
                    out.values.push(v);
                }
            }
        });
        match outcome {
            Ok(()) => break,
            Err(e) => {
                if W::ACTIVE && !ended.get() {
                    let _ = watch.finished(position);
                }
                out.failures.push((position as u32, Failure::Panicked(e)));
                if stop_at_failure {
                    break;
                }
            }
        }
    }
    out
}

/// A worker's copy of one call's captures: bytes until first use, then the
/// decoded value.
pub struct CaptureCache {
    pub(crate) call: u64,
    pub(crate) bytes: CaptureBytes,
    pub(crate) decoded: Option<Box<dyn Any>>,
}

/// A call's encoded captures on a worker, until its first chunk decodes
/// them.
pub(crate) enum CaptureBytes {
    /// Its own copy.
    Owned(Vec<u8>),
    /// Its host agent's shared copy, mapped (never written while mapped).
    Mapped {
        pages: Option<PeerPages>,
        place: InboxPlace,
    },
}

impl CaptureBytes {
    /// How many bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            CaptureBytes::Owned(bytes) => bytes.len(),
            CaptureBytes::Mapped { place, .. } => place.len as usize,
        }
    }

    fn bytes(&mut self) -> Result<&[u8], Error> {
        match self {
            CaptureBytes::Owned(bytes) => Ok(bytes),
            CaptureBytes::Mapped { pages, place } => PeerPages::payload(pages, place, false),
        }
    }
}

/// The uniform entry of a chunk on a worker process: decode the elements,
/// view the cached captures, run, encode the [`ChunkOutput`].
pub type ChunkFn = fn(
    &mut CaptureCache,
    &[u8],
    bool,
    Option<Streams>,
    &mut dyn ElementEvents,
) -> Result<Vec<u8>, Error>;

/// Where a chunk entry function is, as it travels to a worker process.
pub(crate) fn chunk_entry_offset(entry: ChunkFn) -> i64 {
    identity::offset_of(entry as usize)
}

/// The chunk entry function at `offset`.
///
/// # Safety
/// `offset` must come from [`chunk_entry_offset`] in a process running a
/// binary with the same build id as this one (the handshake checks it).
pub(crate) unsafe fn chunk_entry_at(offset: i64) -> ChunkFn {
    // SAFETY: by the caller's promise the address held a `ChunkFn` in an
    // identical image, laid out the same relative to the anchor.
    unsafe { std::mem::transmute::<usize, ChunkFn>(identity::address_at(offset)) }
}

/// The chunk entry function of one `foreach!` call site.
pub struct ChunkEntryOf<R> {
    pub(crate) entry: ChunkFn,
    _value: PhantomData<fn() -> R>,
}

/// Returns the chunk entry function of a body and its combine function.
///
/// # Safety
/// `body` and the function inside `combine` must capture nothing (the macro
/// proves it with [`__no_capture_each`] and `__no_capture`): the entry
/// function conjures them from their types alone.
pub unsafe fn __chunk_entry_of<C, E, R, F, G>(_: &C, _: &E, _: &F, _: &G) -> ChunkEntryOf<R>
where
    C: EachCapture,
    C::Owned: 'static,
    E: Capture,
    R: SendsBack,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R,
    G: Combine<R>,
{
    ChunkEntryOf {
        entry: chunk_entry::<C, E, R, F, G>,
        _value: PhantomData,
    }
}

fn chunk_entry<C, E, R, F, G>(
    cache: &mut CaptureCache,
    elements: &[u8],
    stop_at_failure: bool,
    streams: Option<Streams>,
    events: &mut dyn ElementEvents,
) -> Result<Vec<u8>, Error>
where
    C: EachCapture,
    C::Owned: 'static,
    E: Capture,
    R: SendsBack,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R,
    G: Combine<R>,
{
    const { assert!(std::mem::size_of::<F>() == 0 && std::mem::size_of::<G>() == 0) };
    if cache.decoded.is_none() {
        let owned: C::Owned = codec::decode(cache.bytes.bytes()?, "the captures")?;
        cache.decoded = Some(Box::new(owned));
        // Unmaps a shared copy.
        cache.bytes = CaptureBytes::Owned(Vec::new());
    }
    let captures: &C::Owned = cache
        .decoded
        .as_ref()
        .and_then(|d| d.downcast_ref())
        .ok_or_else(|| Error::Protocol("cached captures of another type".into()))?;
    let elements: Vec<E::Owned> =
        crate::protocol::forms::decode_elements(elements, "the elements of a chunk")?;
    let count = elements.len() as u64;
    // SAFETY: F and G have size zero (asserted above) and capture nothing:
    // `__chunk_entry_of` is only reached with closures that the macro's
    // no-capture checks coerced to fn pointers, so they have no fields and the
    // empty bit pattern is a valid value of each.
    let (body, combine): (F, G) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // Elements say which stream is theirs; the streams are set once.
    let seeded = streams.is_some();
    let _streams = streams.map(rng::stream_scope);
    let mut index = 0u64;
    let mut run = |e: E::Owned| {
        if seeded {
            rng::set_element(index);
        }
        index += 1;
        let mut store = E::store(e);
        body(C::view_owned(captures), E::rebuild(&mut store))
    };
    let started = std::cell::Cell::new(0u64);
    let run = |e: E::Owned| {
        started.set(started.get() + 1);
        run(e)
    };
    // A Slurm job told its time is nearly up starts no new element (after
    // its first: every job gets somewhere): the leader runs the rest
    // elsewhere.
    let mut output = run_chunk(
        elements.into_iter(),
        run,
        combine,
        stop_at_failure,
        |p| p > 0 && super::time_is_up(),
        &mut Events {
            every: events.chunk_starts(),
            events,
        },
    );
    if super::time_is_up() && started.get() < count {
        output.handed_back = Some(started.get() as u32);
    }
    codec::encode(&output, "the values of a chunk")
}

#[cfg(test)]
mod answer_checks {
    use super::{ChunkOutput, Failure};

    fn answer(values: usize, failures: &[u32], folded: bool) -> ChunkOutput<u8> {
        ChunkOutput::of(
            vec![1; values],
            folded.then_some(9),
            failures
                .iter()
                .map(|&p| (p, Failure::TimedOut { after: "1s".into() }))
                .collect(),
        )
    }

    #[test]
    fn answers_that_fit_their_chunk_are_believed() {
        for (values, failures, folded) in [
            (6, &[][..], false),
            (4, &[1, 4][..], false),
            (2, &[2][..], false), // stopped at its first failure
            (0, &[][..], false),  // a stopped call ended it before any ran
            (0, &[0, 5][..], true),
            (0, &[0, 1, 2, 3, 4, 5][..], false),
        ] {
            let a = answer(values, failures, folded);
            assert_eq!(a.check(6), Ok(()), "{values} {failures:?} {folded}");
        }
    }

    #[test]
    fn answers_that_do_not_fit_are_refused_saying_why() {
        let e = answer(30, &[], false).check(6).unwrap_err();
        assert!(e.contains("30 values and 0 failures for 6 elements"), "{e}");
        let e = answer(5, &[7], false).check(6).unwrap_err();
        assert!(e.contains("failure positions [7]"), "{e}");
        let e = answer(3, &[2, 1], false).check(6).unwrap_err();
        assert!(e.contains("not increasing"), "{e}");
        let e = answer(3, &[1, 1], false).check(6).unwrap_err();
        assert!(e.contains("not increasing"), "{e}");
        let e = answer(2, &[], true).check(6).unwrap_err();
        assert!(e.contains("both a combined value and 2 values"), "{e}");
        // Within the chunk but past the elements that ran: no value could
        // stand for the elements between.
        let e = answer(1, &[4], false).check(6).unwrap_err();
        assert!(e.contains("failure positions [4]"), "{e}");
    }
}
