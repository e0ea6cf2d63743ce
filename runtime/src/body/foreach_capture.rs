//! The captures of a `foreach!` body: seen as a rayon closure sees them,
//! while elements come as the iterator yields them.
//!
//! A `foreach!` body runs once per element, so it may not consume a capture.
//! The probe `(&&&&__wrap(&v)).__futurize_each_tag()` picks, from `v`'s type:
//!
//! * `&[T]`, `&Vec<T>`, `Vec<T>` with `T` a plain number ([`Plain`]) →
//!   [`BulkRefTag`]: the body sees `&[T]` or `&Vec<T>` (the caller's data in
//!   this process), and worker processes get the numbers as one piece of
//!   bytes, rebuilt with one copy ([`ViewOf::Sent`], [`BulkVec`]);
//! * any other `&U` → [`RefTag<U>`]: the body sees `&U`;
//! * `T: Copy` → [`CopyTag<T>`]: the body sees its own copy of `T`;
//! * any other `T` → [`BorrowTag<T>`]: the body sees `&T`, so consuming it is
//!   a type error whose hint is `.clone()`.
//!
//! [`EachCapture`] gives that view from the caller's variable (threads and
//! in place: no bytes, no copy) or from the decoded copy on a worker process
//! (decoded once per worker per call, then viewed for every element).
//! Elements use the [`Capture`](super::capture::Capture) tags of `future!` with [`Capture::pass`](super::capture::Capture::pass),
//! picked by a probe of their own ([`__wrap_item`](super::capture::__wrap_item))
//! that splits the pairs `enumerate()` and `zip` yield. Each tag also names
//! the type a worker rebuilds, which the sendability check judges
//! ([`__checked`](super::capture::__checked)).

use super::capture::{
    BulkRefTag, MutKind, MutRefTag, NotExclusive, Rebuilt, RefTag, TagView, Wrap,
};
use crate::protocol::bulk::{BulkSlice, BulkVec, Plain};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// A capture the body sees by copy.
pub struct CopyTag<T>(PhantomData<fn() -> T>);

/// A capture the body sees as `&T`.
pub struct BorrowTag<T>(PhantomData<fn() -> T>);

/// Probe, first choice: the variable is a `&[T]`, a `&Vec<T>` or a `Vec<T>`
/// of plain numbers ([`Plain`]). The body sees `&[T]` or `&Vec<T>`, as with
/// the general tags; worker processes get the numbers as bulk bytes.
pub trait EachViaBulk {
    /// The tag.
    type Tag;
    /// Yields the tag.
    fn __futurize_each_tag(&self) -> Self::Tag;
}

impl<T: Plain> EachViaBulk for &&&Wrap<&[T]> {
    type Tag = BulkRefTag<[T]>;
    fn __futurize_each_tag(&self) -> BulkRefTag<[T]> {
        BulkRefTag(PhantomData)
    }
}

impl<T: Plain> EachViaBulk for &&&Wrap<&Vec<T>> {
    type Tag = BulkRefTag<Vec<T>>;
    fn __futurize_each_tag(&self) -> BulkRefTag<Vec<T>> {
        BulkRefTag(PhantomData)
    }
}

impl<T: Plain> EachViaBulk for &&&Wrap<Vec<T>> {
    type Tag = BulkRefTag<Vec<T>>;
    fn __futurize_each_tag(&self) -> BulkRefTag<Vec<T>> {
        BulkRefTag(PhantomData)
    }
}

/// Probe, second choice: the variable is a reference.
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

/// Probe, second choice too: the variable is `&mut`.
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

impl<T> MutKind for CopyTag<T> {
    type Kind = NotExclusive;
}
impl<T> MutKind for BorrowTag<T> {
    type Kind = NotExclusive;
}

impl<T> CopyTag<T> {
    /// The type a worker rebuilds, for [`__checked`](super::capture::__checked).
    pub fn __futurize_rebuilt(&self) -> Rebuilt<T> {
        Rebuilt::new()
    }
}

impl<T> BorrowTag<T> {
    /// The type a worker rebuilds, for [`__checked`](super::capture::__checked).
    pub fn __futurize_rebuilt(&self) -> Rebuilt<T> {
        Rebuilt::new()
    }
}

/// Probe, third choice: the variable is `Copy`.
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

/// The view of the caller's own variable of type `V` (no bytes, no copy),
/// and the form it is sent to worker processes in (decoded there as
/// [`EachCapture::Owned`]).
pub trait ViewOf<V: ?Sized>: EachCapture {
    /// What is serialized: `&V` itself, or the bulk form of plain numbers.
    type Sent<'b>: Serialize
    where
        Self: 'b,
        V: 'b;
    /// The view.
    fn view<'b>(var: &'b V) -> Self::Ref<'b>
    where
        Self: 'b;
    /// The form `var` is sent in.
    fn sent<'b>(var: &'b V) -> Self::Sent<'b>
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

        impl<'a, $($generic: Serialize + DeserializeOwned)?> ViewOf<&'a $target> for RefTag<$target> {
            type Sent<'b>
                = &'b $target
            where
                Self: 'b,
                &'a $target: 'b;
            fn view<'b>(var: &'b &'a $target) -> &'b $target
            where
                Self: 'b,
            {
                var
            }
            fn sent<'b>(var: &'b &'a $target) -> &'b $target
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

impl<'a, U: Serialize + DeserializeOwned> ViewOf<&'a U> for RefTag<U> {
    type Sent<'b>
        = &'b U
    where
        Self: 'b,
        &'a U: 'b;
    fn view<'b>(var: &'b &'a U) -> &'b U
    where
        Self: 'b,
    {
        var
    }
    fn sent<'b>(var: &'b &'a U) -> &'b U
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

impl<T: Copy + Serialize + DeserializeOwned> ViewOf<T> for CopyTag<T> {
    type Sent<'b>
        = &'b T
    where
        Self: 'b,
        T: 'b;
    fn view<'b>(var: &'b T) -> T
    where
        Self: 'b,
    {
        *var
    }
    fn sent<'b>(var: &'b T) -> &'b T
    where
        Self: 'b,
    {
        var
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

impl<T: Serialize + DeserializeOwned> ViewOf<T> for BorrowTag<T> {
    type Sent<'b>
        = &'b T
    where
        Self: 'b,
        T: 'b;
    fn view<'b>(var: &'b T) -> &'b T
    where
        Self: 'b,
    {
        var
    }
    fn sent<'b>(var: &'b T) -> &'b T
    where
        Self: 'b,
    {
        var
    }
}

impl<T: Plain> EachCapture for BulkRefTag<[T]> {
    type Owned = BulkVec<T>;
    type Ref<'b>
        = &'b [T]
    where
        Self: 'b;
    fn view_owned(owned: &BulkVec<T>) -> &[T] {
        &owned.0
    }
}

impl<'a, T: Plain> ViewOf<&'a [T]> for BulkRefTag<[T]> {
    type Sent<'b>
        = BulkSlice<'b, T>
    where
        Self: 'b,
        &'a [T]: 'b;
    fn view<'b>(var: &'b &'a [T]) -> &'b [T]
    where
        Self: 'b,
    {
        var
    }
    fn sent<'b>(var: &'b &'a [T]) -> BulkSlice<'b, T>
    where
        Self: 'b,
    {
        BulkSlice(var)
    }
}

impl<T: Plain> EachCapture for BulkRefTag<Vec<T>> {
    type Owned = BulkVec<T>;
    type Ref<'b>
        = &'b Vec<T>
    where
        Self: 'b;
    fn view_owned(owned: &BulkVec<T>) -> &Vec<T> {
        &owned.0
    }
}

impl<'a, T: Plain> ViewOf<&'a Vec<T>> for BulkRefTag<Vec<T>> {
    type Sent<'b>
        = BulkSlice<'b, T>
    where
        Self: 'b,
        &'a Vec<T>: 'b;
    fn view<'b>(var: &'b &'a Vec<T>) -> &'b Vec<T>
    where
        Self: 'b,
    {
        var
    }
    fn sent<'b>(var: &'b &'a Vec<T>) -> BulkSlice<'b, T>
    where
        Self: 'b,
    {
        BulkSlice(var)
    }
}

impl<T: Plain> ViewOf<Vec<T>> for BulkRefTag<Vec<T>> {
    type Sent<'b>
        = BulkSlice<'b, T>
    where
        Self: 'b;
    fn view<'b>(var: &'b Vec<T>) -> &'b Vec<T>
    where
        Self: 'b,
    {
        var
    }
    fn sent<'b>(var: &'b Vec<T>) -> BulkSlice<'b, T>
    where
        Self: 'b,
    {
        BulkSlice(var)
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
            type Sent<'b>
                = ($($tag::Sent<'b>,)*)
            where
                Self: 'b,
                ($(&'x $v,)*): 'b;
            #[allow(clippy::unused_unit)]
            fn view<'b>(var: &'b ($(&'x $v,)*)) -> Self::Ref<'b>
            where
                Self: 'b,
            {
                let ($($var,)*) = var;
                ($($tag::view(*$var),)*)
            }
            #[allow(clippy::unused_unit)]
            fn sent<'b>(var: &'b ($(&'x $v,)*)) -> Self::Sent<'b>
            where
                Self: 'b,
            {
                let ($($var,)*) = var;
                ($($tag::sent(*$var),)*)
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
/// [`Capture`](super::capture::Capture) values.
pub fn __typed_each<C: TagView, E: TagView, R, F>(_: &C, _: &E, body: F) -> F
where
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R,
{
    body
}

/// Compiles only if a two-argument body captures nothing.
pub fn __no_capture_each<A, B, R>(_: fn(A, B) -> R) {}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the probe's references are the point
mod tests {
    use super::super::capture::__wrap;
    use super::*;
    use crate::protocol::codec;

    /// The tag type the probe picks for a variable, by name.
    fn tag_name<T>(_: &T) -> &'static str {
        std::any::type_name::<T>()
    }

    /// The view and the sent form of the caller's variables under `tags`.
    fn view_and_sent<'v, C: ViewOf<V>, V>(_: &C, vars: &'v V) -> (C::Ref<'v>, Vec<u8>) {
        (C::view(vars), codec::encode(&C::sent(vars), "x").unwrap())
    }

    #[test]
    fn plain_vectors_and_slices_get_bulk_tags_and_keep_their_views() {
        let floats = vec![f64::NAN, -0.0, 1.5];
        let ints = vec![-1i32; 1000];
        let ints_ref = &ints;
        let bytes: &[u8] = &[1, 2, 3];
        let strings = vec![String::from("a")];
        let strings_ref: &[String] = &strings;
        let n = 3u32;
        assert!(tag_name(&(&&&&__wrap(&floats)).__futurize_each_tag()).contains("BulkRefTag"));
        assert!(tag_name(&(&&&&__wrap(&ints_ref)).__futurize_each_tag()).contains("BulkRefTag"));
        assert!(tag_name(&(&&&&__wrap(&bytes)).__futurize_each_tag()).contains("BulkRefTag<[u8]>"));
        let _: BorrowTag<Vec<String>> = (&&&&__wrap(&strings)).__futurize_each_tag();
        let _: RefTag<[String]> = (&&&&__wrap(&strings_ref)).__futurize_each_tag();
        let _: CopyTag<u32> = (&&&&__wrap(&n)).__futurize_each_tag();
        let tags = (
            (&&&&__wrap(&floats)).__futurize_each_tag(),
            (&&&&__wrap(&ints_ref)).__futurize_each_tag(),
            (&&&&__wrap(&bytes)).__futurize_each_tag(),
            (&&&&__wrap(&strings)).__futurize_each_tag(),
        );
        let vars = (&floats, &ints_ref, &bytes, &strings);
        let ((f, i, b, s), sent) = view_and_sent(&tags, &vars);
        // The caller's own data, not a copy, as the same types as before.
        let (f, i, b, s): (&Vec<f64>, &Vec<i32>, &[u8], &Vec<String>) = (f, i, b, s);
        assert!(std::ptr::eq(f, &floats) && std::ptr::eq(i, ints_ref));
        assert!(std::ptr::eq(b, bytes) && std::ptr::eq(s, &strings));
        // Bulk: exactly the bytes (serde would write each -1 as one varint
        // byte), a length prefix each.
        let payload = 8 * 3 + 4 * 1000 + 3;
        assert!(
            sent.len() >= payload && sent.len() <= payload + 4 * 9 + 2,
            "{}",
            sent.len()
        );
        // What a worker decodes, and the body there sees.
        type Tags = (
            BulkRefTag<Vec<f64>>,
            BulkRefTag<Vec<i32>>,
            BulkRefTag<[u8]>,
            BorrowTag<Vec<String>>,
        );
        let _: &Tags = &tags;
        let owned: <Tags as EachCapture>::Owned = codec::decode(&sent, "x").unwrap();
        let (f2, i2, b2, s2) = Tags::view_owned(&owned);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(f2), bits(&floats));
        assert_eq!((i2, b2, s2), (&ints, bytes, &strings));
    }
}
