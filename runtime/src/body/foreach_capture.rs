//! The captures of a `foreach!` body: seen as a rayon closure sees them,
//! while elements come as the iterator yields them.
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
//! Elements use the [`Capture`] tags of `future!` with [`Capture::pass`],
//! picked by a probe of their own ([`__wrap_item`](super::capture::__wrap_item))
//! that splits the pairs `enumerate()` and `zip` yield. Each tag also names
//! the type a worker rebuilds, which the sendability check judges
//! ([`__check_serialize`](super::capture::__check_serialize)).

use super::capture::{Capture, MutRefTag, NotMutRef, Rebuilt, RefTag, Wrap};
use serde::de::DeserializeOwned;
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

impl<T> CopyTag<T> {
    /// The type a worker rebuilds, for [`__check_serialize`](super::capture::__check_serialize).
    pub fn __futurize_rebuilt(&self) -> Rebuilt<T> {
        Rebuilt::new()
    }
}

impl<T> BorrowTag<T> {
    /// The type a worker rebuilds, for [`__check_serialize`](super::capture::__check_serialize).
    pub fn __futurize_rebuilt(&self) -> Rebuilt<T> {
        Rebuilt::new()
    }
}

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
