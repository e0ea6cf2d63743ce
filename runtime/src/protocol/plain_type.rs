//! Which plain number type a generic type is, found at run time: what lets
//! a body's value or a chunk's elements of plain numbers travel in bulk
//! ([`bulk`](super::bulk)) from code that is generic over them and cannot
//! be specialised.
//!
//! A value type `R` of a body carries no `'static` bound (nor does the
//! engine ask one of its elements), so [`std::any::TypeId::of`] cannot be
//! asked about it directly. [`same_type`] asks it through a trait object
//! whose lifetime bound is widened: a type's id does not depend on its
//! lifetimes, which are erased before code is generated. Two types with the
//! same id are then the same type up to lifetimes; since every type this
//! module compares against is `'static` and names no lifetime (`Vec<f64>`,
//! `(u64,)`), equal ids mean the very same type, and the casts below are
//! the identity. The one exception, `(&P,)` (a slice's element), is said
//! where it is found ([`with_plain_ref_in_tuple`]).

use super::bulk::Plain;
use std::any::TypeId;
use std::marker::PhantomData;

/// The id of a type's lifetime-erased form, for any type.
trait ErasedId {
    fn erased_id(&self) -> TypeId
    where
        Self: 'static;
}

impl<T: ?Sized> ErasedId for PhantomData<T> {
    fn erased_id(&self) -> TypeId
    where
        Self: 'static,
    {
        TypeId::of::<T>()
    }
}

/// The [`TypeId`] of `T` with its lifetimes erased.
fn erased_id<T: ?Sized>() -> TypeId {
    let marker = PhantomData::<T>;
    let object: &dyn ErasedId = &marker;
    // SAFETY: only the trait object's lifetime bound changes; the pointer
    // and its vtable stay as they are. The one method called through it
    // reads nothing of the (zero-size) value and returns the type's id,
    // which the compiler computes with lifetimes erased, so no reference
    // of a shorter lifetime can be used past its end.
    let object: &(dyn ErasedId + 'static) =
        unsafe { std::mem::transmute::<&dyn ErasedId, &(dyn ErasedId + 'static)>(object) };
    object.erased_id()
}

/// Whether `T` is `U` (`U` names no lifetime, so the comparison of erased
/// ids is exact).
pub(crate) fn same_type<T: ?Sized, U: ?Sized + 'static>() -> bool {
    erased_id::<T>() == TypeId::of::<U>()
}

/// `value` as a `U`, when `U` is `T` (`T` names no lifetime, so the
/// comparison is exact).
pub(crate) fn cast_into<T: 'static, U>(value: T) -> Result<U, T> {
    if !same_type::<U, T>() {
        return Err(value);
    }
    let value = std::mem::ManuallyDrop::new(value);
    // SAFETY: `U` and `T` are the same type (checked above), so reading the
    // value as a `U` moves it unchanged; `ManuallyDrop` keeps it from being
    // dropped twice.
    Ok(unsafe { std::ptr::read((&*value as *const T).cast::<U>()) })
}

/// `value` seen as a `U`, when `T` is `U`.
pub(crate) fn cast_ref<T, U: 'static>(value: &T) -> Option<&U> {
    // SAFETY: the same type (checked first), so the same reference is a
    // valid `&U` for the same borrow.
    same_type::<T, U>().then(|| unsafe { &*(value as *const T).cast::<U>() })
}

/// `values` seen as a slice of `U`, when `T` is `U`.
pub(crate) fn cast_slice<T, U: 'static>(values: &[T]) -> Option<&[U]> {
    // SAFETY: the same type (checked first), so the same memory is a valid
    // slice of `U` of the same length for the same borrow.
    same_type::<T, U>()
        .then(|| unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<U>(), values.len()) })
}

/// Something to do with the plain number type that a type turned out to be.
pub(crate) trait WithPlain {
    /// What it gives.
    type Out;
    /// Does it with `P`.
    fn with<P: Plain>(self) -> Self::Out;
}

/// How a plain number type `P` stands in a type.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// `P` itself.
    Bare,
    /// `(P,)`.
    OneTuple,
    /// `Vec<P>`.
    Vec,
    /// `(&P,)`, compared as `(&'static P,)`.
    RefInTuple,
}

/// Calls `task` with the plain number type `P` that `T` is made of in
/// `shape`; `None` when `T` is no such type.
fn dispatch<T: ?Sized, W: WithPlain>(task: W, shape: Shape) -> Option<W::Out> {
    macro_rules! try_each {
        ($($p:ty),*) => {$(
            let found = match shape {
                Shape::Bare => same_type::<T, $p>(),
                Shape::OneTuple => same_type::<T, ($p,)>(),
                Shape::Vec => same_type::<T, Vec<$p>>(),
                Shape::RefInTuple => same_type::<T, (&'static $p,)>(),
            };
            if found {
                return Some(task.with::<$p>());
            }
        )*};
    }
    try_each!(
        f64, f32, u64, i64, u32, i32, u8, i8, u16, i16, usize, isize, u128, i128
    );
    None
}

/// Calls `task` with `T` when it is a plain number type.
pub(crate) fn with_plain<T: ?Sized, W: WithPlain>(task: W) -> Option<W::Out> {
    dispatch::<T, W>(task, Shape::Bare)
}

/// Whether `T` is a plain number type.
pub(crate) fn is_plain<T: ?Sized>() -> bool {
    struct Found;
    impl WithPlain for Found {
        type Out = ();
        fn with<P: Plain>(self) {}
    }
    with_plain::<T, _>(Found).is_some()
}

/// Calls `task` with `P` when `T` is `(&P,)` for a plain number type `P`
/// (a `foreach!` element of one binding over a slice's `iter()`). Its
/// reference may live shorter than `'static`: whoever casts such elements
/// to `(&'static P,)` reads them only within the borrow it was given.
pub(crate) fn with_plain_ref_in_tuple<T: ?Sized, W: WithPlain>(task: W) -> Option<W::Out> {
    dispatch::<T, W>(task, Shape::RefInTuple)
}

/// Calls `task` with `P` when `T` is a `Vec<P>` of a plain number type.
pub(crate) fn with_plain_vec<T: ?Sized, W: WithPlain>(task: W) -> Option<W::Out> {
    dispatch::<T, W>(task, Shape::Vec)
}

/// Calls `task` with `P` when `T` is the one-element tuple `(P,)` of a plain
/// number type (a `foreach!` element of one binding).
pub(crate) fn with_plain_in_tuple<T: ?Sized, W: WithPlain>(task: W) -> Option<W::Out> {
    dispatch::<T, W>(task, Shape::OneTuple)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct SizeOf;
    impl WithPlain for SizeOf {
        type Out = usize;
        fn with<P: Plain>(self) -> usize {
            std::mem::size_of::<P>()
        }
    }

    #[test]
    fn types_are_told_apart_whatever_their_lifetimes() {
        assert!(same_type::<Vec<f64>, Vec<f64>>());
        assert!(!same_type::<Vec<f32>, Vec<f64>>());
        assert!(!same_type::<(u64,), u64>());
        fn borrowed<'a>(_: &'a str) -> bool {
            same_type::<&'a str, &'static str>() && !same_type::<&'a str, String>()
        }
        assert!(borrowed(&String::from("short-lived")));
    }

    #[test]
    fn casts_happen_only_between_the_same_type() {
        assert_eq!(cast_into::<Vec<f64>, Vec<f64>>(vec![1.5]), Ok(vec![1.5]));
        assert_eq!(cast_into::<Vec<u32>, Vec<f64>>(vec![7]), Err(vec![7]));
        assert_eq!(cast_ref::<u8, u8>(&3), Some(&3));
        assert_eq!(cast_ref::<u8, i8>(&3), None);
        let pairs = [(1u64,), (2,)];
        assert_eq!(cast_slice::<_, (u64,)>(&pairs), Some(&pairs[..]));
        assert!(cast_slice::<_, (u32,)>(&pairs).is_none());
    }

    #[test]
    fn plain_types_and_their_one_tuples_are_found() {
        assert_eq!(with_plain::<f64, _>(SizeOf), Some(8));
        assert_eq!(with_plain::<u16, _>(SizeOf), Some(2));
        assert_eq!(with_plain::<bool, _>(SizeOf), None);
        assert_eq!(with_plain::<(f64,), _>(SizeOf), None);
        assert_eq!(with_plain_in_tuple::<(i128,), _>(SizeOf), Some(16));
        assert_eq!(with_plain_in_tuple::<(u8, u8), _>(SizeOf), None);
        assert_eq!(with_plain_in_tuple::<String, _>(SizeOf), None);
        assert_eq!(with_plain_vec::<Vec<f32>, _>(SizeOf), Some(4));
        assert_eq!(with_plain_vec::<Vec<bool>, _>(SizeOf), None);
        fn element<'a>(_: &'a u32) -> Option<usize> {
            with_plain_ref_in_tuple::<(&'a u32,), _>(SizeOf)
        }
        assert_eq!(element(&7), Some(4));
        assert!(is_plain::<usize>() && !is_plain::<char>() && !is_plain::<[u8]>());
    }
}
