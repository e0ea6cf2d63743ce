//! Whether a capture or a loop item can travel: the compile-time check
//! behind every captured variable and every `foreach!` iterable, what it
//! says when one cannot, and what a body's value must be ([`SendsBack`]).
//!
//! A body may run on a worker in another process or on another machine,
//! which rebuilds every captured value and loop item from bytes. So a
//! capture must be owned data that serde can write and read back.
//! `future!` and `foreach!` check that at the captured name's span (a loop
//! item's at its iterable), before anything else uses the value, so the
//! error names the variable, says what is wrong with its type and what to
//! capture instead.
//!
//! The invariant that keeps it one error: the tag and the reference the
//! runtime gets come only out of [`__checked`], whose result type is a
//! projection through the check traits. When a check fails the projection
//! cannot be normalised, the value's type stays unknown, and rustc says
//! nothing more about the code that uses it.
//!
//! Serde's traits are foreign: their messages cannot be changed. The check
//! therefore asks futurize's own traits, in two steps:
//!
//! 1. A probe sorts the type the worker rebuilds (a [`Rebuilt`]) into a
//!    kind, by method resolution down a chain of `Deref` levels; the first
//!    level with a matching `__futurize_kind` wins:
//!    - an open handle (`File`, a socket, a child process) → [`Handle`];
//!      a raw pointer → [`Pointer`];
//!    - a type whose structure futurize knows (numbers, strings, std
//!      containers, tuples, references; see [`Structure`]) → [`Borrowed`]
//!      when a reference is nested anywhere in it, else [`Data`];
//!    - any other type that implements `Serialize` → [`Data`];
//!    - an `Rc`, an `Arc` or their `Weak`s → [`Shared`] (after `Serialize`,
//!      so that serde's `rc` feature keeps working);
//!    - anything else (a closure, a type without the derives) → [`Opaque`].
//! 2. [`__checked`] asks one trait per kind of failure. Each is
//!    implemented for every type under the other kinds, so only the trait
//!    of the kind found can fail, and its `#[diagnostic::on_unimplemented]`
//!    message is what the user reads.
//!
//! Only a capture's outermost reference can travel: a `&[String]` is
//! rebuilt as a `Vec<String>` and lent to the body, but nothing can rebuild
//! a borrow inside a value (`&[&str]`, `(u8, &str)`, `Option<&T>`): it
//! points into the caller's memory. Rustc would only say so as a lifetime
//! error ("`Deserialize` is not general enough"); [`Structure`] finds such
//! borrows by type, before lifetimes are looked at.

use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The kind of a type that owns its data and can be written and read back.
pub struct Data;
/// The kind of a type with a reference nested inside it.
pub struct Borrowed;
/// The kind of `Rc`, `Arc` and their `Weak`s without serde's `rc` feature.
pub struct Shared;
/// The kind of an open file, socket or child process.
pub struct Handle;
/// The kind of a raw pointer.
pub struct Pointer;
/// The kind of any other type that cannot be serialized (a closure, say).
pub struct Opaque;

/// The type a worker rebuilds for one capture, as it enters the probe.
pub struct Rebuilt<T: ?Sized>(ByStructure<T>);

/// Probe level: types whose structure futurize knows.
pub struct ByStructure<T: ?Sized>(BySerialize<T>);

/// Probe level: other serializable types.
pub struct BySerialize<T: ?Sized>(BySharing<T>);

/// Probe level: shared pointers.
pub struct BySharing<T: ?Sized>(Fallback<T>);

/// Probe level: everything else.
pub struct Fallback<T: ?Sized>(PhantomData<fn() -> *const T>);

impl<T: ?Sized> Rebuilt<T> {
    pub(crate) fn new() -> Self {
        Rebuilt(ByStructure(BySerialize(BySharing(Fallback(PhantomData)))))
    }
}

macro_rules! probe_level {
    ($($level:ident => $next:ident),*) => {$(
        impl<T: ?Sized> Deref for $level<T> {
            type Target = $next<T>;
            fn deref(&self) -> &$next<T> {
                &self.0
            }
        }
    )*};
}

probe_level!(
    Rebuilt => ByStructure,
    ByStructure => BySerialize,
    BySerialize => BySharing,
    BySharing => Fallback
);

macro_rules! first_level_kind {
    ($kind:ident: $([$($generic:ident)?] $ty:ty),*) => {$(
        impl<$($generic: ?Sized)?> Rebuilt<$ty> {
            /// The kind of this capture.
            pub fn __futurize_kind(&self) -> $kind {
                $kind
            }
        }
    )*};
}

first_level_kind!(Handle:
    [] std::fs::File,
    [] std::net::TcpStream,
    [] std::net::TcpListener,
    [] std::net::UdpSocket,
    [] std::process::Child,
    [] std::process::ChildStdin,
    [] std::process::ChildStdout,
    [] std::process::ChildStderr
);
first_level_kind!(Pointer:
    [T] *const T,
    [T] *mut T,
    [T] std::ptr::NonNull<T>
);

impl<T: ?Sized + Structure> ByStructure<T> {
    /// The kind of this capture: [`Borrowed`] or [`Data`].
    pub fn __futurize_kind(&self) -> T::Kind {
        T::Kind::default()
    }
}

impl<T: ?Sized + Serialize> BySerialize<T> {
    /// The kind of this capture.
    pub fn __futurize_kind(&self) -> Data {
        Data
    }
}

macro_rules! shared_kind {
    ($($ty:ty),*) => {$(
        impl<T: ?Sized> BySharing<$ty> {
            /// The kind of this capture.
            pub fn __futurize_kind(&self) -> Shared {
                Shared
            }
        }
    )*};
}

shared_kind!(
    std::rc::Rc<T>,
    std::sync::Arc<T>,
    std::rc::Weak<T>,
    std::sync::Weak<T>
);

impl<T: ?Sized> Fallback<T> {
    /// The kind of this capture.
    pub fn __futurize_kind(&self) -> Opaque {
        Opaque
    }
}

/// Types whose structure futurize knows, and whether a reference is nested
/// in them. Lifetimes play no part in choosing an impl, so this finds a
/// `&'a str` inside a value where `DeserializeOwned` could only fail with
/// a lifetime error.
pub trait Structure {
    /// [`Borrowed`] or [`Data`].
    type Kind: Default;
}

impl Default for Data {
    fn default() -> Self {
        Data
    }
}

impl Default for Borrowed {
    fn default() -> Self {
        Borrowed
    }
}

/// [`Borrowed`] if either kind is.
pub trait Either<K> {
    /// The kind of the two together.
    type Kind: Default;
}
impl<K> Either<K> for Borrowed {
    type Kind = Borrowed;
}
impl Either<Borrowed> for Data {
    type Kind = Borrowed;
}
impl Either<Data> for Data {
    type Kind = Data;
}

impl<U: ?Sized> Structure for &U {
    type Kind = Borrowed;
}
impl<U: ?Sized> Structure for &mut U {
    type Kind = Borrowed;
}

macro_rules! owned_structure {
    ($($ty:ty),*) => {$(
        impl Structure for $ty {
            type Kind = Data;
        }
    )*};
}

owned_structure! {
    (), bool, char, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64,
    str, String, Path, PathBuf, std::time::Duration
}

macro_rules! container_structure {
    ($([$($generic:ident),*] $ty:ty => $element:ident),*) => {$(
        impl<$($generic),*> Structure for $ty where $element: Structure {
            type Kind = $element::Kind;
        }
    )*};
}

container_structure!(
    [T] Vec<T> => T,
    [T] VecDeque<T> => T,
    [T] BTreeSet<T> => T,
    [T, S] HashSet<T, S> => T,
    [T] Option<T> => T
);

impl<T: ?Sized + Structure> Structure for Box<T> {
    type Kind = T::Kind;
}
impl<T: Structure> Structure for [T] {
    type Kind = T::Kind;
}
impl<T: Structure, const N: usize> Structure for [T; N] {
    type Kind = T::Kind;
}
impl<K: Structure, V: Structure, S> Structure for HashMap<K, V, S>
where
    K::Kind: Either<V::Kind>,
{
    type Kind = <K::Kind as Either<V::Kind>>::Kind;
}
impl<K: Structure, V: Structure> Structure for BTreeMap<K, V>
where
    K::Kind: Either<V::Kind>,
{
    type Kind = <K::Kind as Either<V::Kind>>::Kind;
}
impl<T: Structure, E: Structure> Structure for Result<T, E>
where
    T::Kind: Either<E::Kind>,
{
    type Kind = <T::Kind as Either<E::Kind>>::Kind;
}

macro_rules! tuple_structure {
    ($first:ident $(, $rest:ident)+) => {
        impl<$first: Structure $(, $rest: Structure)+> Structure for ($first, $($rest),+)
        where
            ($($rest,)+): Structure,
            $first::Kind: Either<<($($rest,)+) as Structure>::Kind>,
        {
            type Kind = <$first::Kind as Either<<($($rest,)+) as Structure>::Kind>>::Kind;
        }
    };
}

impl<A: Structure> Structure for (A,) {
    type Kind = A::Kind;
}
tuple_structure!(A, B);
tuple_structure!(A, B, C);
tuple_structure!(A, B, C, D);
tuple_structure!(A, B, C, D, E);
tuple_structure!(A, B, C, D, E, F);

/// Implements a check trait for every type under the kinds it does not
/// judge.
macro_rules! passes_under {
    ($check:ident: $($kind:ident),*) => {$(
        impl<T: ?Sized> $check<$kind> for T {
            type Then<V> = V;
            fn pass<V>(value: V) -> V {
                value
            }
        }
    )*};
}

/// Fails for open handles.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is an open handle of this process, which cannot be sent to a worker",
    label = "a worker rebuilds this value from bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which rebuilds every captured value and loop item from bytes; an open file, socket or child \
            process means nothing there",
    note = "capture what opens it and open it in the body: a file's path (`let path = \
            PathBuf::from(\"data.csv\");`, then `File::open(&path)` inside the body), a \
            socket's address"
)]
pub trait NotHandle<K> {
    /// The value passed through when the check holds.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
passes_under!(NotHandle: Data, Borrowed, Shared, Pointer, Opaque);

/// Fails for raw pointers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a raw pointer, which cannot be sent to a worker",
    label = "a worker rebuilds this value from bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which rebuilds every captured value and loop item from bytes; an address in this process means \
            nothing there",
    note = "capture the data it points to, as an owned value: a copy of the `T`, or a \
            `Vec<T>` for a buffer"
)]
pub trait NotPointer<K> {
    /// The value passed through when the check holds.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
passes_under!(NotPointer: Data, Borrowed, Shared, Handle, Opaque);

/// Fails for values with a reference nested inside.
#[diagnostic::on_unimplemented(
    message = "`{Self}` holds borrowed data, which cannot be sent to a worker",
    label = "a worker rebuilds this value from bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which rebuilds every captured value and loop item from bytes as an owned value: a captured \
            `&T` is rebuilt as a `T` and lent to the body, but a reference inside a value \
            points into this process's memory",
    note = "capture owned data: a `Vec<String>` for a `&[&str]` (`let words: Vec<String> = \
            words.iter().map(|w| w.to_string()).collect();`), a `(u8, String)` for a \
            `(u8, &str)`, an `Option<T>` for an `Option<&T>` (`.cloned()`)",
    note = "loop over owned items: a `Vec<String>` rather than a `Vec<&str>`, a \
            `Vec<Vec<f64>>` rather than a `Vec<&[f64]>` (`let chunks: Vec<Vec<f64>> = \
            xs.chunks(4).map(|c| c.to_vec()).collect();`)"
)]
pub trait NoBorrowInside<K> {
    /// The value passed through when the check holds.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
passes_under!(NoBorrowInside: Data, Shared, Handle, Pointer, Opaque);

/// Fails for `Rc`, `Arc` and their `Weak`s.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a shared pointer, which cannot be sent to a worker",
    label = "a worker rebuilds this value from bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which rebuilds every captured value and loop item from bytes: it gets its own copy, so there \
            is nothing to share with",
    note = "clone the value inside and capture that (`let data = (*shared).clone();`), or \
            capture the plain data the body needs"
)]
pub trait NotShared<K> {
    /// The value passed through when the check holds.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
passes_under!(NotShared: Data, Borrowed, Handle, Pointer, Opaque);

/// Fails for types that cannot be serialized.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be turned into bytes, so it cannot be sent to a worker",
    label = "a worker rebuilds this value from bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which rebuilds every captured value and loop item from bytes: captured values implement \
            serde's `Serialize` and `Deserialize`",
    note = "for a type of yours, add `#[derive(Serialize, Deserialize)]`",
    note = "a closure is code, not data: write it as a function item (`fn model(x: f64) -> \
            f64 {{ .. }}`) and call that in the body, or capture the data the closure uses \
            (its parameters, in a serializable struct) and compute in the body"
)]
pub trait IntoBytes<K> {
    /// The value passed through when the check holds.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
passes_under!(IntoBytes: Data, Borrowed, Shared, Handle, Pointer);

/// Fails for serializable types that cannot be read back.
#[diagnostic::on_unimplemented(
    message = "`{Self}` can be turned into bytes but not rebuilt from them, so it cannot be \
               sent to a worker",
    label = "a worker rebuilds this value from bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which rebuilds every captured value and loop item from bytes: captured values implement \
            serde's `Deserialize` as well as `Serialize`",
    note = "for a type of yours, add `#[derive(Serialize, Deserialize)]`"
)]
pub trait FromBytes<K> {
    /// The value passed through when the check holds.
    type Then<V>;
    /// Passes `value` through.
    fn pass<V>(value: V) -> Self::Then<V>;
}
passes_under!(FromBytes: Borrowed, Shared, Handle, Pointer, Opaque);
impl<T: DeserializeOwned> FromBytes<Data> for T {
    type Then<V> = V;
    fn pass<V>(value: V) -> V {
        value
    }
}
impl FromBytes<Data> for str {
    type Then<V> = V;
    fn pass<V>(value: V) -> V {
        value
    }
}
impl FromBytes<Data> for Path {
    type Then<V> = V;
    fn pass<V>(value: V) -> V {
        value
    }
}
impl<T: DeserializeOwned> FromBytes<Data> for [T] {
    type Then<V> = V;
    fn pass<V>(value: V) -> V {
        value
    }
}

/// A body's value that a worker can send back: what the map engine asks of
/// every `foreach!` body's value, in futurize's words when it does not hold.
///
/// The impl is `do_not_recommend`ed, so that rustc reports the value's type
/// against this trait (its message, at the body's value, where the macro
/// points the engine's call) rather than the serde bound deep inside it
/// ("`dyn Error: Serialize` is not satisfied").
#[diagnostic::on_unimplemented(
    message = "a body's value of type `{Self}` cannot be sent back from a worker",
    label = "the body's value: a worker sends it back as bytes",
    note = "a body may run on a worker, possibly in another process or on another machine, \
            which sends the body's value back as bytes: it is owned data that implements \
            serde's `Serialize` and `Deserialize`, and `Send`",
    note = "return an error as text (`.map_err(|e| e.to_string())`, giving a `Result<T, \
            String>`) or as an error type of yours with `#[derive(Serialize, Deserialize)]`: \
            `Box<dyn Error>` and most library errors (`ParseFloatError`, `io::Error`) are \
            not data a worker can send; for other types, return owned, serializable data"
)]
pub trait SendsBack: Serialize + DeserializeOwned + Send {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send> SendsBack for T {}

/// `V` passed through every check of a capture of type `T` under kind `K`.
/// Where a check fails, the projection cannot be normalised and the type is
/// unknown to rustc, which then reports nothing else about it.
pub type Checked<T, K, V> = <T as FromBytes<K>>::Then<
    <T as IntoBytes<K>>::Then<
        <T as NotShared<K>>::Then<
            <T as NoBorrowInside<K>>::Then<
                <T as NotPointer<K>>::Then<<T as NotHandle<K>>::Then<V>>,
            >,
        >,
    >,
>;

/// Checks, at the captured name's span, that a capture can be sent: written
/// here and rebuilt on a worker. `kind` comes from the probe on `rebuilt`.
///
/// `value` (the capture's tag, and a reference to it) comes back only
/// through the checks: when one fails, its `on_unimplemented` message is
/// the one error the user reads, and the code that uses the value, whose
/// bounds would fail again in serde's and futurize's internal words, is
/// not reported on.
pub fn __checked<T, K, V>(_rebuilt: &Rebuilt<T>, _kind: K, value: V) -> Checked<T, K, V>
where
    T: ?Sized
        + NotHandle<K>
        + NotPointer<K>
        + NoBorrowInside<K>
        + NotShared<K>
        + IntoBytes<K>
        + FromBytes<K>,
{
    let value = <T as NotHandle<K>>::pass(value);
    let value = <T as NotPointer<K>>::pass(value);
    let value = <T as NoBorrowInside<K>>::pass(value);
    let value = <T as NotShared<K>>::pass(value);
    let value = <T as IntoBytes<K>>::pass(value);
    <T as FromBytes<K>>::pass(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_name<T: ?Sized, K>(_: &Rebuilt<T>, _: K) -> &'static str {
        std::any::type_name::<K>().rsplit("::").next().unwrap()
    }

    macro_rules! kind_of {
        ($ty:ty) => {{
            let r = Rebuilt::<$ty>::new();
            kind_name(&r, r.__futurize_kind())
        }};
    }

    #[derive(Serialize)]
    struct WriteOnly;

    struct NoDerives;

    #[test]
    fn kinds() {
        assert_eq!(kind_of!(Vec<String>), "Data");
        assert_eq!(kind_of!(str), "Data");
        assert_eq!(kind_of!([u8]), "Data");
        assert_eq!(kind_of!((u8, String, Option<Vec<f64>>)), "Data");
        assert_eq!(kind_of!(WriteOnly), "Data");
        assert_eq!(kind_of!(&str), "Borrowed");
        assert_eq!(kind_of!([&str]), "Borrowed");
        assert_eq!(kind_of!((u8, &str)), "Borrowed");
        assert_eq!(kind_of!(Option<&String>), "Borrowed");
        assert_eq!(kind_of!(HashMap<String, Vec<&[u8]>>), "Borrowed");
        assert_eq!(kind_of!(std::rc::Rc<u8>), "Shared");
        assert_eq!(kind_of!(std::fs::File), "Handle");
        assert_eq!(kind_of!(*const u8), "Pointer");
        assert_eq!(kind_of!(NoDerives), "Opaque");
    }

    #[test]
    fn data_passes() {
        let r = Rebuilt::<Vec<String>>::new();
        assert_eq!(__checked(&r, r.__futurize_kind(), 7), 7);
        let r = Rebuilt::<str>::new();
        assert_eq!(__checked(&r, r.__futurize_kind(), "kept"), "kept");
    }
}
