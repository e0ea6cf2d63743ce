//! Per-element bodies (`foreach!`): captures seen as a rayon closure sees
//! them, elements as the iterator yields them.
//!
//! A `foreach!` body runs once per element, so it may not consume a capture.
//! The probe `(&&&__wrap(&v)).__futurize_each_tag()` picks, from `v`'s type:
//!
//! * `&U` → [`RefTag<U>`]: the body sees `&U`;
//! * `T: Copy` → [`CopyTag<T>`]: the body sees its own copy of `T`;
//! * any other `T` → [`BorrowTag<T>`]: the body sees `&T`, so consuming it is
//!   a type error whose hint is `.clone()`.
//!
//! [`EachCapture`] gives that view from the caller's variable (threads and
//! in place: no bytes, no copy) or from the decoded copy on a worker process
//! (decoded once per worker per call, then viewed for every element).
//! Elements use the [`Capture`] tags of `future!` with [`Capture::pass`].

use crate::capture::{Capture, MutRefTag, NotMutRef, RefTag, Wrap};
use crate::relay::Output;
use crate::rng::{self, Streams};
use crate::{Error, codec, execute};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::any::Any;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// A capture the body sees by copy.
pub struct CopyTag<T>(PhantomData<fn() -> T>);

/// A capture the body sees as `&T`.
pub struct BorrowTag<T>(PhantomData<fn() -> T>);

/// Probe, first choice: the variable is a reference.
pub trait EachViaRef {
    /// The tag.
    type Tag;
    /// Yields the tag.
    fn __futurize_each_tag(&self) -> Self::Tag;
}

impl<U: ?Sized> EachViaRef for &&Wrap<&U> {
    type Tag = RefTag<U>;
    fn __futurize_each_tag(&self) -> RefTag<U> {
        RefTag(PhantomData)
    }
}

/// Probe, first choice too: the variable is `&mut`.
pub trait EachViaMutRef {
    /// The tag.
    type Tag;
    /// Yields the tag.
    fn __futurize_each_tag(&self) -> Self::Tag;
}

impl<U: ?Sized> EachViaMutRef for &&Wrap<&mut U> {
    type Tag = MutRefTag<U>;
    fn __futurize_each_tag(&self) -> MutRefTag<U> {
        MutRefTag(PhantomData)
    }
}

impl<T> NotMutRef for CopyTag<T> {}
impl<T> NotMutRef for BorrowTag<T> {}

/// Probe, second choice: the variable is `Copy`.
pub trait EachViaCopy {
    /// The tag.
    type Tag;
    /// Yields the tag.
    fn __futurize_each_tag(&self) -> Self::Tag;
}

impl<T: Copy> EachViaCopy for &Wrap<T> {
    type Tag = CopyTag<T>;
    fn __futurize_each_tag(&self) -> CopyTag<T> {
        CopyTag(PhantomData)
    }
}

/// Probe, last choice: any other value, seen by reference.
pub trait EachViaBorrow {
    /// The tag.
    type Tag;
    /// Yields the tag.
    fn __futurize_each_tag(&self) -> Self::Tag;
}

impl<T> EachViaBorrow for Wrap<T> {
    type Tag = BorrowTag<T>;
    fn __futurize_each_tag(&self) -> BorrowTag<T> {
        BorrowTag(PhantomData)
    }
}

/// How a `foreach!` capture travels and what each element's body sees.
#[diagnostic::on_unimplemented(
    message = "a captured value of type `{Self}` cannot be rebuilt on a worker",
    note = "captured values must implement serde's `Serialize` and `Deserialize` \
            (derive them), and borrowed data may not be nested inside a capture"
)]
pub trait EachCapture {
    /// The wire form, decoded once per worker per call.
    type Owned: DeserializeOwned;
    /// What the body sees.
    type Ref<'b>
    where
        Self: 'b;
    /// The view of the decoded copy.
    fn view_owned(owned: &Self::Owned) -> Self::Ref<'_>;
}

/// The view of the caller's own variable of type `V` (no bytes, no copy).
pub trait ViewOf<V: ?Sized>: EachCapture {
    /// The view.
    fn view<'b>(var: &'b V) -> Self::Ref<'b>
    where
        Self: 'b;
}

impl<U: DeserializeOwned> EachCapture for RefTag<U> {
    type Owned = U;
    type Ref<'b>
        = &'b U
    where
        Self: 'b;
    fn view_owned(owned: &U) -> &U {
        owned
    }
}

macro_rules! unsized_each_capture {
    ([$($generic:ident)?] $target:ty => $owned:ty) => {
        impl<$($generic: DeserializeOwned)?> EachCapture for RefTag<$target> {
            type Owned = $owned;
            type Ref<'b>
                = &'b $target
            where
                Self: 'b;
            fn view_owned(owned: &$owned) -> &$target {
                owned
            }
        }

        impl<'a, $($generic: DeserializeOwned)?> ViewOf<&'a $target> for RefTag<$target> {
            fn view<'b>(var: &'b &'a $target) -> &'b $target
            where
                Self: 'b,
            {
                var
            }
        }
    };
}

unsized_each_capture!([] str => String);
unsized_each_capture!([T] [T] => Vec<T>);
unsized_each_capture!([] Path => PathBuf);

impl<'a, U: DeserializeOwned> ViewOf<&'a U> for RefTag<U> {
    fn view<'b>(var: &'b &'a U) -> &'b U
    where
        Self: 'b,
    {
        var
    }
}

impl<T: Copy + DeserializeOwned> EachCapture for CopyTag<T> {
    type Owned = T;
    type Ref<'b>
        = T
    where
        Self: 'b;
    fn view_owned(owned: &T) -> T {
        *owned
    }
}

impl<T: Copy + DeserializeOwned> ViewOf<T> for CopyTag<T> {
    fn view<'b>(var: &'b T) -> T
    where
        Self: 'b,
    {
        *var
    }
}

impl<T: DeserializeOwned> EachCapture for BorrowTag<T> {
    type Owned = T;
    type Ref<'b>
        = &'b T
    where
        Self: 'b;
    fn view_owned(owned: &T) -> &T {
        owned
    }
}

impl<T: DeserializeOwned> ViewOf<T> for BorrowTag<T> {
    fn view<'b>(var: &'b T) -> &'b T
    where
        Self: 'b,
    {
        var
    }
}

macro_rules! tuple_each_capture {
    ($($tag:ident $var:ident $v:ident),*) => {
        impl<$($tag: EachCapture),*> EachCapture for ($($tag,)*) {
            type Owned = ($($tag::Owned,)*);
            type Ref<'b>
                = ($($tag::Ref<'b>,)*)
            where
                Self: 'b;
            #[allow(clippy::unused_unit)]
            fn view_owned(owned: &Self::Owned) -> Self::Ref<'_> {
                let ($($var,)*) = owned;
                ($($tag::view_owned($var),)*)
            }
        }

        impl<'x, $($tag: ViewOf<$v>, $v: ?Sized + 'x),*> ViewOf<($(&'x $v,)*)> for ($($tag,)*) {
            #[allow(clippy::unused_unit)]
            fn view<'b>(var: &'b ($(&'x $v,)*)) -> Self::Ref<'b>
            where
                Self: 'b,
            {
                let ($($var,)*) = var;
                ($($tag::view(*$var),)*)
            }
        }
    };
}

tuple_each_capture!();
tuple_each_capture!(A a VA);
tuple_each_capture!(A a VA, B b VB);
tuple_each_capture!(A a VA, B b VB, C c VC);
tuple_each_capture!(A a VA, B b VB, C c VC, D d VD);
tuple_each_capture!(A a VA, B b VB, C c VC, D d VD, E e VE);
tuple_each_capture!(A a VA, B b VB, C c VC, D d VD, E e VE, F f VF);
tuple_each_capture!(A a VA, B b VB, C c VC, D d VD, E e VE, F f VF, G g VG);
tuple_each_capture!(A a VA, B b VB, C c VC, D d VD, E e VE, F f VF, G g VG, H h VH);

/// Checks, at the captured name's span, that a capture can be rebuilt.
pub fn __check_each_capture<C: EachCapture>(_: &C) {}

/// Types a per-element body: captures as [`EachCapture`] views, elements as
/// [`Capture`] values.
pub fn __typed_each<C: EachCapture, E: Capture, R, F>(_: &C, _: &E, body: F) -> F
where
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R,
{
    body
}

/// Compiles only if a two-argument body captures nothing.
pub fn __no_capture_each<A, B, R>(_: fn(A, B) -> R) {}

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
    C: EachCapture,
    E: Capture,
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
    Panicked {
        /// The panic message.
        message: String,
        /// Where it panicked.
        location: Option<String>,
        /// A backtrace when `RUST_BACKTRACE` was set.
        backtrace: Option<String>,
    },
    /// It ran longer than `timeout` (found when it returned: a body in this
    /// process cannot be stopped).
    TimedOut {
        /// The time limit as the user wrote it.
        after: String,
    },
}

impl Failure {
    pub(crate) fn from_error(e: Error) -> Failure {
        match e {
            Error::Panicked {
                message,
                location,
                backtrace,
                ..
            } => Failure::Panicked {
                message,
                location,
                backtrace,
            },
            other => Failure::Panicked {
                message: other.to_string(),
                location: None,
                backtrace: None,
            },
        }
    }

    pub(crate) fn into_error(self, label: Option<&str>, index: usize) -> Error {
        let label = label.map(str::to_string);
        match self {
            Failure::Panicked {
                message,
                location,
                backtrace,
            } => Error::Panicked {
                message,
                location,
                label,
                index: Some(index),
                backtrace,
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
    /// when combining).
    pub values: Vec<R>,
    /// The combined value of the elements that succeeded (when combining).
    pub folded: Option<R>,
    /// The elements that failed: position in the chunk, and why.
    pub failures: Vec<(u32, Failure)>,
    /// What the chunk's elements printed, in element order (filled in where
    /// the chunk ran, or from the worker's reply).
    #[serde(skip)]
    pub output: Output,
}

impl<R> ChunkOutput<R> {
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
}

/// What happens around each element of a chunk: progress, time limits.
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
    let mut out = ChunkOutput {
        values: Vec::with_capacity(if G::ACTIVE { 0 } else { elements.size_hint().0 }),
        folded: None,
        failures: Vec::new(),
        output: Output::default(),
    };
    loop {
        let mut position = 0;
        // Whether the watch heard of the current element's end (a panic in
        // `combine` comes after it).
        let ended = std::cell::Cell::new(false);
        let outcome = execute::catch(|| {
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
                out.failures.push((position as u32, Failure::from_error(e)));
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
    pub(crate) bytes: Vec<u8>,
    pub(crate) decoded: Option<Box<dyn Any>>,
}

/// The uniform entry of a chunk on a worker process: decode the elements,
/// view the cached captures, run, encode the [`ChunkOutput`].
pub type ChunkFn = fn(&mut CaptureCache, &[u8], bool, Option<Streams>) -> Result<Vec<u8>, Error>;

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
    R: Serialize,
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
) -> Result<Vec<u8>, Error>
where
    C: EachCapture,
    C::Owned: 'static,
    E: Capture,
    R: Serialize,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R,
    G: Combine<R>,
{
    const { assert!(std::mem::size_of::<F>() == 0 && std::mem::size_of::<G>() == 0) };
    if cache.decoded.is_none() {
        let owned: C::Owned = codec::decode(&cache.bytes, "the captures")?;
        cache.decoded = Some(Box::new(owned));
        cache.bytes = Vec::new();
    }
    let captures: &C::Owned = cache
        .decoded
        .as_ref()
        .and_then(|d| d.downcast_ref())
        .ok_or_else(|| Error::Protocol("cached captures of another type".into()))?;
    let elements: Vec<E::Owned> = codec::decode(elements, "the elements of a chunk")?;
    // SAFETY: F and G have size zero (asserted above) and capture nothing:
    // `__chunk_entry_of` is only reached with closures that the macro's
    // no-capture checks coerced to fn pointers, so they have no fields and the
    // empty bit pattern is a valid value of each.
    let (body, combine): (F, G) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    let mut index = 0u64;
    let run = |e: E::Owned| {
        index += 1;
        let mut store = E::store(e);
        rng::with_stream(streams, index - 1, || {
            body(C::view_owned(captures), E::rebuild(&mut store))
        })
    };
    let output = run_chunk(
        elements.into_iter(),
        run,
        combine,
        stop_at_failure,
        |_| false,
        &mut crate::worker::WorkerWatch,
    );
    codec::encode(&output, "the values of a chunk")
}
