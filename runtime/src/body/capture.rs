//! Typed captures: how a value captured by `future!` is shipped and rebuilt.
//!
//! The macros never name a capture's type. For every captured variable they
//! call `(&&&__wrap(&x)).__futurize_tag()`, and method resolution (autoref
//! specialisation) picks a zero-size *tag* from the inferred type. Each
//! level of the probe is a receiver with one reference less, so the first
//! level that matches wins:
//!
//! 1. `x: &[T]` or `&Vec<T>`, `T` a plain number ([`Plain`](crate::protocol::bulk::Plain)),
//!    gives [`BulkRefTag`]: the bytes travel in one piece (`capture/bulk.rs`).
//! 2. `x: &U` gives [`RefTag<U>`]: the worker rebuilds an owned `U` (or `String`
//!    for `str`, `Vec<T>` for `[T]`, `PathBuf` for `Path`) and the body borrows it,
//!    so inside the body `x` is `&U` exactly as outside. (`&mut U` gives a
//!    [`MutRefTag`], which fails a check.)
//! 3. `x: Vec<T>`, `T` a plain number, gives [`BulkTag`]: the body receives
//!    its own `Vec<T>`, sent as bytes in one piece.
//! 4. anything else gives [`OwnedTag<T>`]: the body receives its own `T`.
//!
//! [`SendCapture`] writes the captures as their tags say, at creation
//! ([`__encode_captures_of`]); strings need no tag of their own, since serde
//! already writes and reads a `str` as one piece of bytes.
//!
//! [`Capture`] maps a tag (or a tuple of tags) to the wire form, the storage on
//! the worker and the type the body sees. The body closure is typed
//! `for<'b> Fn(C::Ref<'b>) -> R`, so every borrow it gets lives only for the
//! call: nothing can smuggle a reference to the worker's storage out of it.
//!
//! Invariant: the body closure captures nothing. [`__no_capture`] checks it at
//! compile time (a closure coerces to a `fn` pointer only if it captures
//! nothing), and `__entry` asserts the closure type has size zero, so the
//! entry function can conjure the closure from its type alone.
//!
//! Before any of that, [`__checked`] (in `sendable`) checks that
//! each capture can travel at all, so that a capture which cannot (an `Rc`,
//! a closure, a file, a borrow nested in a value) is reported at the
//! variable, in futurize's words.
//!
//! The elements of a `foreach!` get tags by a probe of their own
//! ([`__wrap_item`]), which also splits the pairs that `enumerate()`,
//! `zip` and map iterators yield into a tag per side: `(usize, &T)` gets
//! `(OwnedTag<usize>, RefTag<T>)`, so the worker rebuilds `(usize, T)` and
//! the body sees `(usize, &T)`.

use crate::Error;
use crate::protocol::{codec, identity};
use serde::{Serialize, de::DeserializeOwned};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

mod bulk;
mod send;
mod view;
// Public for the kinds and check traits in `__checked`'s signature,
// which the macros reach through `__private`; hidden, not an API.
#[doc(hidden)]
pub mod sendable;

pub use bulk::{__encode_captures_of, BulkRefTag, BulkTag, SendCapture};
// The wire forms of the bulk tags, named in their `Capture` impls.
#[doc(hidden)]
pub use crate::protocol::bulk::{BulkSlice, BulkVec, Plain};
pub(crate) use sendable::Rebuilt;
pub use sendable::{__checked, SendsBack};
pub use view::TagView;

/// The uniform entry of every future: decode the captures, run the body,
/// encode its value. One monomorphised copy per `future!` call site.
pub type EntryFn = fn(&[u8]) -> Result<Vec<u8>, Error>;

/// Tag of a capture the body receives by value.
pub struct OwnedTag<T>(pub(crate) PhantomData<fn() -> T>);

/// Tag of a capture the body receives as `&U`.
pub struct RefTag<U: ?Sized>(pub(crate) PhantomData<fn() -> *const U>);

/// Carries a captured variable's type into method resolution.
pub struct Wrap<T>(pub(crate) PhantomData<fn() -> T>);

/// Starts the tag probe for one captured variable.
pub fn __wrap<T>(_: &T) -> Wrap<T> {
    Wrap(PhantomData)
}

/// Starts the tag probe for the elements an iterator yields:
/// `__wrap_item(&it).__futurize_element_tag()`.
pub fn __wrap_item<I: Iterator>(_: &I) -> ElementProbe<I::Item> {
    ElementProbe(PairOwnedRef(PairRefOwned(OwnedElement(PhantomData))))
}

/// Element probe, first level: `&U`, `&mut U` and `(&A, &B)`. Each level
/// derefs to the next, so method resolution takes the first that matches.
pub struct ElementProbe<T>(PairOwnedRef<T>);

/// Element probe, second level: `(A, &B)`, as `enumerate()` yields.
pub struct PairOwnedRef<T>(PairRefOwned<T>);

/// Element probe, third level: `(&A, B)`.
pub struct PairRefOwned<T>(OwnedElement<T>);

/// Element probe, last level: any other element is received by value.
pub struct OwnedElement<T>(PhantomData<fn() -> T>);

impl<T> std::ops::Deref for ElementProbe<T> {
    type Target = PairOwnedRef<T>;
    fn deref(&self) -> &PairOwnedRef<T> {
        &self.0
    }
}

impl<T> std::ops::Deref for PairOwnedRef<T> {
    type Target = PairRefOwned<T>;
    fn deref(&self) -> &PairRefOwned<T> {
        &self.0
    }
}

impl<T> std::ops::Deref for PairRefOwned<T> {
    type Target = OwnedElement<T>;
    fn deref(&self) -> &OwnedElement<T> {
        &self.0
    }
}

impl<U: ?Sized> ElementProbe<&U> {
    /// The tag of an element that is a reference.
    pub fn __futurize_element_tag(&self) -> RefTag<U> {
        RefTag(PhantomData)
    }
}

impl<U: ?Sized> ElementProbe<&mut U> {
    /// The tag of an element that is `&mut` (which cannot be shipped).
    pub fn __futurize_element_tag(&self) -> MutRefTag<U> {
        MutRefTag(PhantomData)
    }
}

impl<A: ?Sized, B: ?Sized> ElementProbe<(&A, &B)> {
    /// The tag of a pair of references (`a.iter().zip(b.iter())`, a map's `iter()`).
    pub fn __futurize_element_tag(&self) -> (RefTag<A>, RefTag<B>) {
        (RefTag(PhantomData), RefTag(PhantomData))
    }
}

impl<A, B: ?Sized> PairOwnedRef<(A, &B)> {
    /// The tag of a value paired with a reference (`xs.iter().enumerate()`).
    pub fn __futurize_element_tag(&self) -> (OwnedTag<A>, RefTag<B>) {
        (OwnedTag(PhantomData), RefTag(PhantomData))
    }
}

impl<A: ?Sized, B> PairRefOwned<(&A, B)> {
    /// The tag of a reference paired with a value.
    pub fn __futurize_element_tag(&self) -> (RefTag<A>, OwnedTag<B>) {
        (RefTag(PhantomData), OwnedTag(PhantomData))
    }
}

impl<T> OwnedElement<T> {
    /// The tag of an element received by value.
    pub fn __futurize_element_tag(&self) -> OwnedTag<T> {
        OwnedTag(PhantomData)
    }
}

/// Chosen first (by-value receiver): the captured variable is a reference.
pub trait ViaRef {
    /// The tag this probe yields.
    type Tag;
    /// Yields the tag.
    fn __futurize_tag(self) -> Self::Tag;
}

impl<U: ?Sized> ViaRef for &&Wrap<&U> {
    type Tag = RefTag<U>;
    fn __futurize_tag(self) -> RefTag<U> {
        RefTag(PhantomData)
    }
}

/// Tag of a `&mut` capture, which cannot be shipped: it exists to fail
/// [`__not_mut`] with a message that says what to do instead.
pub struct MutRefTag<U: ?Sized>(pub(crate) PhantomData<fn() -> *const U>);

/// Chosen first too (by-value receiver): the captured variable is `&mut`.
pub trait ViaMutRef {
    /// The tag this probe yields.
    type Tag;
    /// Yields the tag.
    fn __futurize_tag(self) -> Self::Tag;
}

impl<U: ?Sized> ViaMutRef for &&Wrap<&mut U> {
    type Tag = MutRefTag<U>;
    fn __futurize_tag(self) -> MutRefTag<U> {
        MutRefTag(PhantomData)
    }
}

/// Whether a tag stands for a `&mut` capture: [`Exclusive`] or
/// [`NotExclusive`], for [`__not_mut`].
pub trait MutKind {
    /// The kind.
    type Kind;
}

/// The kind of a `&mut` capture.
pub struct Exclusive;
/// The kind of every other capture.
pub struct NotExclusive;

impl<U: ?Sized> MutKind for MutRefTag<U> {
    type Kind = Exclusive;
}

/// Fails for a `&mut` capture: asked of the variable's own type, so the
/// message names it.
#[diagnostic::on_unimplemented(
    message = "a future cannot capture `&mut` data: it runs on its own copy, possibly in \
               another process, and changes are never written back",
    label = "this variable is a `&mut` reference",
    note = "capture the value itself and return the new one, e.g. \
            `let v = future!({{ let mut v = v; v.push(1); v }}).value()?;`"
)]
pub trait NotMutRef<K> {
    /// The value passed through when the capture is not `&mut`.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
impl<T: ?Sized> NotMutRef<NotExclusive> for T {
    type Then<V> = V;
    fn pass<V>(value: V) -> V {
        value
    }
}

impl<T> MutKind for OwnedTag<T> {
    type Kind = NotExclusive;
}
impl<U: ?Sized> MutKind for RefTag<U> {
    type Kind = NotExclusive;
}

/// Checks, at the captured name's span, that a capture is not `&mut`, and
/// passes `value` through: when the check fails, the value's type is left
/// unknown, so the code that uses it is not reported on again.
pub fn __not_mut<C, T, V>(_tag: &C, _variable: &T, value: V) -> <T as NotMutRef<C::Kind>>::Then<V>
where
    C: MutKind,
    T: ?Sized + NotMutRef<C::Kind>,
{
    <T as NotMutRef<C::Kind>>::pass(value)
}

impl<T> OwnedTag<T> {
    /// The type a worker rebuilds, for [`__checked`].
    pub fn __futurize_rebuilt(&self) -> Rebuilt<T> {
        Rebuilt::new()
    }
}

impl<U: ?Sized> RefTag<U> {
    /// The type a worker rebuilds (`str` stands for `String`, `[T]` for
    /// `Vec<T>`), for [`__checked`].
    pub fn __futurize_rebuilt(&self) -> Rebuilt<U> {
        Rebuilt::new()
    }
}

impl<U: ?Sized> MutRefTag<U> {
    /// What the capture refers to, for [`__checked`] (the capture
    /// itself fails [`__not_mut`]).
    pub fn __futurize_rebuilt(&self) -> Rebuilt<U> {
        Rebuilt::new()
    }
}

/// The type a worker rebuilds for one loop item, from the item's tag: what
/// [`__checked`] judges for the items of a `foreach!`. A pair's halves are
/// boxed so that an unsized half (`str`, `[T]`) still makes a type.
pub trait ElementRebuilt {
    /// The rebuilt type.
    type Rebuilt: ?Sized;
}
impl<T> ElementRebuilt for OwnedTag<T> {
    type Rebuilt = T;
}
impl<U: ?Sized> ElementRebuilt for RefTag<U> {
    type Rebuilt = U;
}
impl<U: ?Sized> ElementRebuilt for MutRefTag<U> {
    type Rebuilt = U;
}
impl<A: ElementRebuilt, B: ElementRebuilt> ElementRebuilt for (A, B) {
    type Rebuilt = (Box<A::Rebuilt>, Box<B::Rebuilt>);
}

/// The type a worker rebuilds for the items whose tag is `tag`.
pub fn __element_rebuilt<G: ElementRebuilt>(_tag: &G) -> Rebuilt<G::Rebuilt> {
    Rebuilt::new()
}

/// Chosen otherwise (autoref'd receiver): the captured variable is a value.
pub trait ViaOwned {
    /// The tag this probe yields.
    type Tag;
    /// Yields the tag.
    fn __futurize_tag(&self) -> Self::Tag;
}

impl<T> ViaOwned for Wrap<T> {
    type Tag = OwnedTag<T>;
    fn __futurize_tag(&self) -> OwnedTag<T> {
        OwnedTag(PhantomData)
    }
}

/// How one capture (or a tuple of them) travels and what the body sees.
#[diagnostic::on_unimplemented(
    message = "a captured value of type `{Self}` cannot be rebuilt on a worker",
    note = "captured values must implement serde's `Serialize` and `Deserialize` \
            (derive them), and borrowed data may not be nested inside a capture: \
            convert `&[&str]`, `Option<&T>` and the like to owned values first"
)]
pub trait Capture {
    /// The wire form, decoded on the worker.
    type Owned: DeserializeOwned;
    /// What the worker keeps while the body runs.
    type Store;
    /// What the body receives.
    type Ref<'b>
    where
        Self: 'b;
    /// What the caller holds: the value an iterator yields for an element.
    type Item<'b>
    where
        Self: 'b;
    /// Hands the body an element as the caller holds it, without bytes.
    fn pass<'b>(item: Self::Item<'b>) -> Self::Ref<'b>
    where
        Self: 'b;
    /// Turns the decoded form into storage.
    fn store(owned: Self::Owned) -> Self::Store;
    /// Hands the body its view of the storage.
    fn rebuild(store: &mut Self::Store) -> Self::Ref<'_>;
}

impl<T: DeserializeOwned> Capture for OwnedTag<T> {
    type Owned = T;
    type Store = Option<T>;
    type Ref<'b>
        = T
    where
        T: 'b;
    type Item<'b>
        = T
    where
        T: 'b;
    fn pass<'b>(item: T) -> T
    where
        T: 'b,
    {
        item
    }
    fn store(owned: T) -> Option<T> {
        Some(owned)
    }
    fn rebuild(store: &mut Option<T>) -> T {
        store
            .take()
            .expect("a future's body runs once per decoded capture")
    }
}

impl<U: DeserializeOwned> Capture for RefTag<U> {
    type Owned = U;
    type Store = U;
    type Ref<'b>
        = &'b U
    where
        U: 'b;
    type Item<'b>
        = &'b U
    where
        U: 'b;
    fn pass<'b>(item: &'b U) -> &'b U
    where
        U: 'b,
    {
        item
    }
    fn store(owned: U) -> U {
        owned
    }
    fn rebuild(store: &mut U) -> &U {
        store
    }
}

macro_rules! unsized_ref_capture {
    ($(#[$doc:meta])* [$($generic:ident)?] $target:ty => $owned:ty) => {
        $(#[$doc])*
        impl<$($generic: DeserializeOwned)?> Capture for RefTag<$target> {
            type Owned = $owned;
            type Store = $owned;
            type Ref<'b>
                = &'b $target
            where
                Self: 'b;
            type Item<'b>
                = &'b $target
            where
                Self: 'b;
            fn pass<'b>(item: &'b $target) -> &'b $target
            where
                Self: 'b,
            {
                item
            }
            fn store(owned: $owned) -> $owned {
                owned
            }
            fn rebuild(store: &mut $owned) -> &$target {
                store
            }
        }
    };
}

unsized_ref_capture!(/** `&str` travels as a `String`. */ [] str => String);
unsized_ref_capture!(/** `&[T]` travels as a `Vec<T>`. */ [T] [T] => Vec<T>);
unsized_ref_capture!(/** `&Path` travels as a `PathBuf`. */ [] Path => PathBuf);

macro_rules! tuple_capture {
    ($($tag:ident $var:ident),*) => {
        impl<$($tag: Capture),*> Capture for ($($tag,)*) {
            type Owned = ($($tag::Owned,)*);
            type Store = ($($tag::Store,)*);
            type Ref<'b>
                = ($($tag::Ref<'b>,)*)
            where
                Self: 'b;
            type Item<'b>
                = ($($tag::Item<'b>,)*)
            where
                Self: 'b;
            #[allow(clippy::unused_unit)]
            fn pass<'b>(item: Self::Item<'b>) -> Self::Ref<'b>
            where
                Self: 'b,
            {
                let ($($var,)*) = item;
                ($($tag::pass($var),)*)
            }
            #[allow(clippy::unused_unit)]
            fn store(owned: Self::Owned) -> Self::Store {
                let ($($var,)*) = owned;
                ($($tag::store($var),)*)
            }
            #[allow(clippy::unused_unit)]
            fn rebuild(store: &mut Self::Store) -> Self::Ref<'_> {
                let ($($var,)*) = store;
                ($($tag::rebuild($var),)*)
            }
        }
    };
}

tuple_capture!();
tuple_capture!(A a);
tuple_capture!(A a, B b);
tuple_capture!(A a, B b, C c);
tuple_capture!(A a, B b, C c, D d);
tuple_capture!(A a, B b, C c, D d, E e);
tuple_capture!(A a, B b, C c, D d, E e, F f);
tuple_capture!(A a, B b, C c, D d, E e, F f, G g);
tuple_capture!(A a, B b, C c, D d, E e, F f, G g, H h);
tuple_capture!(A a, B b, C c, D d, E e, F f, G g, H h, I i);
tuple_capture!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j);
tuple_capture!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k);
tuple_capture!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l);

/// The most captures one `future!` may have; the macro nests beyond this.
pub const MAX_FLAT_CAPTURES: usize = 12;

/// Types the body closure: its parameter is exactly what the worker rebuilds.
pub fn __typed<C: TagView, R, F>(_: &C, body: F) -> F
where
    F: for<'b> Fn(C::Ref<'b>) -> R,
{
    body
}

/// Compiles only if `body` captures nothing: such a closure, and only such a
/// closure, coerces to a `fn` pointer. A missed capture is reported as
/// "`y` captured here".
pub fn __no_capture<A, R>(_: fn(A) -> R) {}

/// The entry function of one call site, tied to the type of its value.
pub struct EntryOf<R> {
    pub(crate) entry: EntryFn,
    _value: PhantomData<fn() -> R>,
}

impl<R> EntryOf<R> {
    /// The entry function.
    pub fn entry(&self) -> EntryFn {
        self.entry
    }
}

/// Returns the entry function of a body.
///
/// # Safety
/// `body` must capture nothing (the macro proves it with [`__no_capture`]):
/// the entry function conjures the closure from its type alone.
pub unsafe fn __entry_of<C, R, F>(_: &C, _: &F) -> EntryOf<R>
where
    C: Capture,
    R: SendsBack,
    F: for<'b> Fn(C::Ref<'b>) -> R,
{
    EntryOf {
        entry: __entry::<C, R, F>,
        _value: PhantomData,
    }
}

/// Where a future's entry function is, as it travels to a worker process.
pub(crate) fn entry_offset(entry: EntryFn) -> i64 {
    identity::offset_of(entry as usize)
}

/// The future entry function at `offset`.
///
/// # Safety
/// `offset` must come from [`entry_offset`] in a process running a binary
/// with the same build id as this one (the handshake checks it).
pub(crate) unsafe fn entry_at(offset: i64) -> EntryFn {
    // SAFETY: by the caller's promise the address held an `EntryFn` in an
    // identical image, laid out the same relative to the anchor.
    unsafe { std::mem::transmute::<usize, EntryFn>(identity::address_at(offset)) }
}

fn __entry<C, R, F>(captures: &[u8]) -> Result<Vec<u8>, Error>
where
    C: Capture,
    R: Serialize,
    F: for<'b> Fn(C::Ref<'b>) -> R,
{
    const { assert!(std::mem::size_of::<F>() == 0) };
    let owned: C::Owned = codec::decode(captures, "the captures")?;
    let mut store = C::store(owned);
    // SAFETY: F has size zero (asserted above) and captures nothing: `__entry_of`
    // is only reached with a closure that `__no_capture` coerced to a fn
    // pointer. A non-capturing closure has no fields and hence no invariant, so
    // the empty bit pattern is a valid value of it.
    let body: F = unsafe { std::mem::zeroed() };
    let value = body(C::rebuild(&mut store));
    crate::protocol::forms::encode_value(&value, "the value")
}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the probe's references are the point
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use super::{ViaOwned as _, ViaRef as _};

    #[test]
    fn references_get_ref_tags_and_values_owned_tags() {
        let xs: &[f64] = &[1.0, 2.0];
        let n = 3u8;
        let s = "abc";
        let tags = (
            (&&&__wrap(&xs)).__futurize_tag(),
            (&&&__wrap(&n)).__futurize_tag(),
            (&&&__wrap(&s)).__futurize_tag(),
        );
        let body = __typed(&tags, |(xs, n, s)| xs.len() + n as usize + s.len());
        __no_capture(body);
        // SAFETY: `body` captures nothing, as `__no_capture(body)` just
        // proved by coercing it to a `fn` pointer.
        let entry = unsafe { __entry_of(&tags, &body) };
        let bytes = __encode_captures_of(&tags, (&xs, &n, &s), None).unwrap();
        let out = (entry.entry())(&bytes).unwrap();
        let v: usize = codec::decode(&out, "value").unwrap();
        assert_eq!(v, 2 + 3 + 3);
    }
}
