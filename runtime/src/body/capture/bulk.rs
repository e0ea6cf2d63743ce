//! Captures of plain numbers in bulk: `Vec<T>`, `&[T]` and `&Vec<T>` with
//! `T` an integer or float type travel as one piece of bytes
//! ([`protocol::bulk`](crate::protocol::bulk)) instead of element by element
//! through serde, and are rebuilt with one copy into a typed `Vec<T>`.
//!
//! The probe levels that pick these tags come before the general ones (see
//! the module docs of `capture`): a `&[T]` is tried before any `&U`, a
//! `Vec<T>` before any owned value. A `T` that is not plain (a `String`, a
//! struct) fails the level's bound, and resolution moves on to the general
//! tags.
//!
//! `foreach!` uses [`BulkRefTag`] too, from a probe level of its own
//! (`foreach_capture`): there a body sees the caller's `&[T]` or `&Vec<T>` on
//! threads, and only the bytes sent to worker processes are in bulk.

use super::{Capture, MutKind, NotExclusive, Rebuilt, ViaOwned, ViaRef, Wrap};
use crate::protocol::bulk::{BulkSlice, BulkVec, Plain};
use std::marker::PhantomData;

pub use super::send::{__encode_captures_of, SendCapture};

/// Tag of a `Vec<T>` of plain numbers the body receives by value.
pub struct BulkTag<T>(PhantomData<fn() -> T>);

/// Tag of a `&[T]` or `&Vec<T>` of plain numbers (`U` is `[T]` or `Vec<T>`).
pub struct BulkRefTag<U: ?Sized>(pub(crate) PhantomData<fn() -> *const U>);

impl<T: Plain> ViaRef for &&&Wrap<&[T]> {
    type Tag = BulkRefTag<[T]>;
    fn __futurize_tag(self) -> BulkRefTag<[T]> {
        BulkRefTag(PhantomData)
    }
}

impl<T: Plain> ViaRef for &&&Wrap<&Vec<T>> {
    type Tag = BulkRefTag<Vec<T>>;
    fn __futurize_tag(self) -> BulkRefTag<Vec<T>> {
        BulkRefTag(PhantomData)
    }
}

impl<T: Plain> ViaOwned for &Wrap<Vec<T>> {
    type Tag = BulkTag<T>;
    fn __futurize_tag(&self) -> BulkTag<T> {
        BulkTag(PhantomData)
    }
}

impl<T> MutKind for BulkTag<T> {
    type Kind = NotExclusive;
}
impl<U: ?Sized> MutKind for BulkRefTag<U> {
    type Kind = NotExclusive;
}

impl<T> BulkTag<T> {
    /// The type a worker rebuilds, for the sendability check.
    pub fn __futurize_rebuilt(&self) -> Rebuilt<Vec<T>> {
        Rebuilt::new()
    }
}

impl<U: ?Sized> BulkRefTag<U> {
    /// The type a worker rebuilds, for the sendability check.
    pub fn __futurize_rebuilt(&self) -> Rebuilt<U> {
        Rebuilt::new()
    }
}

impl<T: Plain> Capture for BulkTag<T> {
    type Owned = BulkVec<T>;
    type Store = Option<Vec<T>>;
    type Ref<'b>
        = Vec<T>
    where
        Self: 'b;
    type Item<'b>
        = Vec<T>
    where
        Self: 'b;
    fn pass<'b>(item: Vec<T>) -> Vec<T>
    where
        Self: 'b,
    {
        item
    }
    fn store(owned: BulkVec<T>) -> Option<Vec<T>> {
        Some(owned.0)
    }
    fn rebuild(store: &mut Option<Vec<T>>) -> Vec<T> {
        store
            .take()
            .expect("a future's body runs once per decoded capture")
    }
}

impl<T: Plain> Capture for BulkRefTag<[T]> {
    type Owned = BulkVec<T>;
    type Store = Vec<T>;
    type Ref<'b>
        = &'b [T]
    where
        Self: 'b;
    type Item<'b>
        = &'b [T]
    where
        Self: 'b;
    fn pass<'b>(item: &'b [T]) -> &'b [T]
    where
        Self: 'b,
    {
        item
    }
    fn store(owned: BulkVec<T>) -> Vec<T> {
        owned.0
    }
    fn rebuild(store: &mut Vec<T>) -> &[T] {
        store
    }
}

impl<T: Plain> Capture for BulkRefTag<Vec<T>> {
    type Owned = BulkVec<T>;
    type Store = Vec<T>;
    type Ref<'b>
        = &'b Vec<T>
    where
        Self: 'b;
    type Item<'b>
        = &'b Vec<T>
    where
        Self: 'b;
    fn pass<'b>(item: &'b Vec<T>) -> &'b Vec<T>
    where
        Self: 'b,
    {
        item
    }
    fn store(owned: BulkVec<T>) -> Vec<T> {
        owned.0
    }
    fn rebuild(store: &mut Vec<T>) -> &Vec<T> {
        store
    }
}

impl<'a, T: Plain> SendCapture<'a> for BulkTag<T> {
    type Var = &'a Vec<T>;
    type Sent = BulkSlice<'a, T>;
    fn sent(var: &'a Vec<T>) -> BulkSlice<'a, T> {
        BulkSlice(var)
    }
}

impl<'a, T: Plain> SendCapture<'a> for BulkRefTag<[T]> {
    type Var = &'a &'a [T];
    type Sent = BulkSlice<'a, T>;
    fn sent(var: &'a &'a [T]) -> BulkSlice<'a, T> {
        BulkSlice(var)
    }
}

impl<'a, T: Plain> SendCapture<'a> for BulkRefTag<Vec<T>> {
    type Var = &'a &'a Vec<T>;
    type Sent = BulkSlice<'a, T>;
    fn sent(var: &'a &'a Vec<T>) -> BulkSlice<'a, T> {
        BulkSlice(var)
    }
}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the probe's references are the point
mod tests {
    use super::super::{
        __entry_of, __no_capture, __typed, __wrap, OwnedTag, RefTag, ViaMutRef as _,
    };
    use super::*;
    use crate::protocol::codec;

    /// The tag type the probe picks for a variable, by name.
    fn tag_name<T>(_: &T) -> &'static str {
        std::any::type_name::<T>()
    }

    #[test]
    fn plain_vectors_and_slices_get_bulk_tags_and_others_do_not() {
        let bytes = vec![1u8, 2];
        let floats: &[f64] = &[1.0];
        let floats_ref = &vec![1.0f64];
        let strings = vec![String::new()];
        let strings_ref: &[String] = &strings;
        let n = 3u32;
        assert!(tag_name(&(&&&__wrap(&bytes)).__futurize_tag()).contains("BulkTag<u8>"));
        assert!(tag_name(&(&&&__wrap(&floats)).__futurize_tag()).contains("BulkRefTag<[f64]>"));
        assert!(
            tag_name(&(&&&__wrap(&floats_ref)).__futurize_tag())
                .contains("BulkRefTag<alloc::vec::Vec<f64>>")
        );
        let _: OwnedTag<Vec<String>> = (&&&__wrap(&strings)).__futurize_tag();
        let _: RefTag<[String]> = (&&&__wrap(&strings_ref)).__futurize_tag();
        let _: OwnedTag<u32> = (&&&__wrap(&n)).__futurize_tag();
        let mut m = 1u8;
        let m = &mut m;
        let _: super::super::MutRefTag<u8> = (&&&__wrap(&m)).__futurize_tag();
    }

    #[test]
    fn bulk_captures_round_trip_through_an_entry() {
        let data: Vec<f64> = vec![f64::NAN, -0.0, 1.5, f64::from_bits(0x7ff0_0000_0000_0001)];
        let slice: &[u16] = &[1, 2, 65535];
        let tags = (
            (&&&__wrap(&data)).__futurize_tag(),
            (&&&__wrap(&slice)).__futurize_tag(),
        );
        let body = __typed(&tags, |(data, slice)| {
            (
                data.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                slice.to_vec(),
            )
        });
        __no_capture(body);
        // SAFETY: `__no_capture` above proved the body captures nothing.
        let entry = unsafe { __entry_of(&tags, &body) };
        let bytes = __encode_captures_of(&tags, (&data, &slice), None).unwrap();
        // One length prefix per capture, then exactly the bytes.
        assert!(bytes.len() <= 8 * 4 + 2 * 3 + 2 * 9);
        let out = (entry.entry())(&bytes).unwrap();
        let (bits, back): (Vec<u64>, Vec<u16>) = codec::decode(&out, "value").unwrap();
        assert_eq!(bits, data.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        assert_eq!(back, slice);
    }

    #[test]
    fn a_cut_bulk_capture_is_a_protocol_error() {
        let data = vec![1.0f64; 3];
        let tags = ((&&&__wrap(&data)).__futurize_tag(),);
        let bytes = __encode_captures_of(&tags, (&data,), None).unwrap();
        for cut in 0..bytes.len() {
            let r = codec::decode::<(BulkVec<f64>,)>(&bytes[..cut], "x");
            assert!(r.is_err(), "cut at {cut}");
        }
        // A byte count that is not whole values.
        let odd = codec::encode(&(BulkSlice(&[1u8, 2, 3][..]),), "x").unwrap();
        assert!(codec::decode::<(BulkVec<f64>,)>(&odd, "x").is_err());
    }
}
