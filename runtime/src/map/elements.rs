//! Where a `foreach!` call's elements come from.
//!
//! The macro hands the engine the iterators of its bindings as a tuple, and
//! a probe picks how the engine takes elements from them:
//!
//! * [`Indexed`]: every iterator is a slice's `iter()` (`x in &xs`), a
//!   range of integers, or an owned `Vec` of `Copy` values. Workers in this
//!   process then take element `i` straight from the source (rayon's model):
//!   a chunk is a range of indices, nothing is collected or locked per
//!   element, and values are written in place into the output.
//! * [`Pulled`]: any other iterator. Chunks are pulled from it under a lock,
//!   in element order.
//!
//! Worker processes get the elements as bytes either way.

use crate::sync::lock;
use std::marker::PhantomData;
use std::ops::{Range, RangeInclusive};
use std::sync::Mutex;

/// The elements of one call, as the engine takes them.
#[allow(clippy::len_without_is_empty)]
pub trait Elements: Sync {
    /// One element (a tuple with one entry per binding).
    type Item;
    /// The elements as an iterator (for sources that are not indexed).
    type Iter: Iterator<Item = Self::Item> + Send;
    /// Whether [`len`](Self::len) and [`get`](Self::get) work; when false
    /// the elements come from [`take_iter`](Self::take_iter).
    const INDEXED: bool;
    /// How many elements there are (indexed sources).
    fn len(&self) -> usize;
    /// Element `i` (indexed sources).
    ///
    /// # Safety
    /// `i < len()`.
    unsafe fn get(&self, i: usize) -> Self::Item;
    /// The iterator, the first time it is asked for (other sources).
    fn take_iter(&self) -> Option<Self::Iter>;
    /// When the elements from `i` on are consecutive integers of one
    /// binding (a range), element `i`'s value: a chunk of them travels as
    /// its bounds.
    fn first_of_run(&self, _i: usize) -> Option<i128> {
        None
    }
}

/// One binding's iterator whose elements can be taken by index, from any
/// thread.
pub trait ByIndex: Sync {
    /// What the iterator yields.
    type Item;
    /// How many elements the iterator would yield.
    fn count(&self) -> usize;
    /// What the iterator would yield `i`-th.
    ///
    /// # Safety
    /// `i < count()`.
    unsafe fn at(&self, i: usize) -> Self::Item;
    /// When the elements from `i` on are consecutive integers (a range),
    /// element `i`'s value.
    fn first_of_run(&self, _i: usize) -> Option<i128> {
        None
    }
}

impl<'a, T: Sync> ByIndex for std::slice::Iter<'a, T> {
    type Item = &'a T;
    #[inline]
    fn count(&self) -> usize {
        self.as_slice().len()
    }
    #[inline]
    unsafe fn at(&self, i: usize) -> &'a T {
        // SAFETY: `i < count()`, the slice's length (the caller's promise).
        unsafe { self.as_slice().get_unchecked(i) }
    }
}

/// An owned `Vec` of plain values (`x in xs`): element `i` is a copy of
/// `xs[i]`, so any element may be taken by any thread; the vector is freed
/// with the source.
impl<T: Copy + Sync + Send> ByIndex for std::vec::IntoIter<T> {
    type Item = T;
    #[inline]
    fn count(&self) -> usize {
        self.as_slice().len()
    }
    #[inline]
    unsafe fn at(&self, i: usize) -> T {
        // SAFETY: `i < count()`, the slice's length (the caller's promise).
        unsafe { *self.as_slice().get_unchecked(i) }
    }
}

macro_rules! integer_ranges {
    ($($t:ty),*) => {$(
        impl ByIndex for Range<$t> {
            type Item = $t;
            #[inline]
            fn count(&self) -> usize {
                if self.start < self.end {
                    usize::try_from(self.end as i128 - self.start as i128).unwrap_or(usize::MAX)
                } else {
                    0
                }
            }
            #[inline]
            unsafe fn at(&self, i: usize) -> $t {
                // `i` is below the count, so `start + i` fits in the type;
                // adding modulo its width gives exactly that value.
                self.start.wrapping_add(i as $t)
            }
            fn first_of_run(&self, i: usize) -> Option<i128> {
                (i < self.count()).then(|| self.start.wrapping_add(i as $t) as i128)
            }
        }

        impl ByIndex for RangeInclusive<$t> {
            type Item = $t;
            #[inline]
            fn count(&self) -> usize {
                if self.is_empty() {
                    0
                } else {
                    usize::try_from(*self.end() as i128 - *self.start() as i128 + 1)
                        .unwrap_or(usize::MAX)
                }
            }
            #[inline]
            unsafe fn at(&self, i: usize) -> $t {
                self.start().wrapping_add(i as $t)
            }
            fn first_of_run(&self, i: usize) -> Option<i128> {
                (i < self.count()).then(|| self.start().wrapping_add(i as $t) as i128)
            }
        }
    )*};
}

integer_ranges!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// Elements taken by index from bindings that all allow it; as many as the
/// shortest binding has, as `zip` would give.
pub struct Indexed<T> {
    bindings: T,
    len: usize,
}

/// Elements pulled from the bindings' iterators, zipped, under a lock.
pub struct Pulled<T>(Mutex<Option<T>>);

/// The bindings' iterators zipped into one tuple per element.
pub struct Zipped<T>(T);

/// The probe's choice: take elements by index.
pub struct IndexedKind;

/// The probe's choice: pull elements from the iterators.
pub struct PulledKind;

/// Carries the bindings' types into method resolution.
pub struct ElementsProbe<T>(PhantomData<fn() -> T>);

/// Starts the probe: `(&&__elements_probe(&iters)).__futurize_elements_kind()`.
pub fn __elements_probe<T>(_: &T) -> ElementsProbe<T> {
    ElementsProbe(PhantomData)
}

/// Probe, first choice: every binding can be taken by index.
pub trait ElementsViaIndex {
    /// Yields the choice.
    fn __futurize_elements_kind(&self) -> IndexedKind;
}

/// Probe, second choice: any iterators.
pub trait ElementsViaIter {
    /// Yields the choice.
    fn __futurize_elements_kind(&self) -> PulledKind;
}

impl<T> ElementsViaIter for ElementsProbe<T> {
    fn __futurize_elements_kind(&self) -> PulledKind {
        PulledKind
    }
}

/// A tuple of bindings that all allow taking elements by index.
pub trait BindingsByIndex {
    /// The element count of the shortest binding.
    fn shortest(&self) -> usize;
    /// For one binding whose elements from `i` on are consecutive integers,
    /// element `i`'s value.
    fn first_of_run(&self, i: usize) -> Option<i128>;
}

/// The one binding's answer of [`ByIndex::first_of_run`]; none for several.
fn first_of_one(each: &[Option<i128>]) -> Option<i128> {
    match each {
        [one] => *one,
        _ => None,
    }
}

impl IndexedKind {
    /// The elements of the bindings `t`.
    pub fn __elements<T: BindingsByIndex>(self, t: T) -> Indexed<T> {
        let len = t.shortest();
        Indexed { bindings: t, len }
    }
}

impl PulledKind {
    /// The elements of the bindings' iterators `t`.
    pub fn __elements<T>(self, t: T) -> Pulled<T> {
        Pulled(Mutex::new(Some(t)))
    }
}

macro_rules! binding_tuples {
    ($(($($name:ident $idx:tt),+))*) => {$(
        impl<$($name: ByIndex),+> ElementsViaIndex for &ElementsProbe<($($name,)+)> {
            fn __futurize_elements_kind(&self) -> IndexedKind {
                IndexedKind
            }
        }

        impl<$($name: ByIndex),+> BindingsByIndex for ($($name,)+) {
            fn shortest(&self) -> usize {
                [$(self.$idx.count()),+].into_iter().min().unwrap_or(0)
            }
            fn first_of_run(&self, i: usize) -> Option<i128> {
                first_of_one(&[$(self.$idx.first_of_run(i)),+])
            }
        }

        impl<$($name: ByIndex),+> Elements for Indexed<($($name,)+)> {
            type Item = ($($name::Item,)+);
            type Iter = std::iter::Empty<Self::Item>;
            const INDEXED: bool = true;
            #[inline]
            fn len(&self) -> usize {
                self.len
            }
            #[inline]
            unsafe fn get(&self, i: usize) -> Self::Item {
                // SAFETY: `i < len`, the shortest binding's count (the
                // caller's promise), so below every binding's count.
                unsafe { ($(self.bindings.$idx.at(i),)+) }
            }
            fn take_iter(&self) -> Option<Self::Iter> {
                None
            }
            fn first_of_run(&self, i: usize) -> Option<i128> {
                self.bindings.first_of_run(i)
            }
        }

        impl<$($name: Iterator + Send),+> Elements for Pulled<($($name,)+)> {
            type Item = ($($name::Item,)+);
            type Iter = Zipped<($($name,)+)>;
            const INDEXED: bool = false;
            fn len(&self) -> usize {
                0
            }
            unsafe fn get(&self, _: usize) -> Self::Item {
                unreachable!("elements pulled from iterators are not taken by index")
            }
            fn take_iter(&self) -> Option<Self::Iter> {
                lock(&self.0).take().map(Zipped)
            }
        }

        impl<$($name: Iterator),+> Iterator for Zipped<($($name,)+)> {
            type Item = ($($name::Item,)+);
            #[inline]
            fn next(&mut self) -> Option<Self::Item> {
                Some(($(self.0.$idx.next()?,)+))
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                let hints = [$(self.0.$idx.size_hint()),+];
                let lower = hints.iter().map(|h| h.0).min().unwrap_or(0);
                let upper = hints.iter().filter_map(|h| h.1).min();
                (lower, upper)
            }
        }
    )*};
}

binding_tuples! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}

#[cfg(test)]
mod tests {
    //! Every `get` below asks for an index under the length asserted first.
    #![allow(
        clippy::undocumented_unsafe_blocks,
        clippy::reversed_empty_ranges,
        clippy::needless_borrow
    )]
    use super::*;

    #[test]
    fn slices_ranges_and_copy_vecs_are_indexed() {
        let xs = [1.0f64, 2.0, 3.0];
        let iters = (xs.iter(), 10u8..=12, -2i64..1);
        let _: IndexedKind = (&&__elements_probe(&iters)).__futurize_elements_kind();
        let e = IndexedKind.__elements(iters);
        assert_eq!(e.len(), 3);
        assert_eq!(unsafe { e.get(0) }, (&1.0, 10, -2));
        assert_eq!(unsafe { e.get(2) }, (&3.0, 12, 0));
        let owned = (vec![5u32, 6].into_iter(),);
        let _: IndexedKind = (&&__elements_probe(&owned)).__futurize_elements_kind();
        assert_eq!(unsafe { IndexedKind.__elements(owned).get(1) }, (6,));
    }

    #[test]
    fn the_shortest_binding_decides_the_length() {
        let xs = [1, 2, 3, 4];
        let e = IndexedKind.__elements((xs.iter(), 0usize..2));
        assert_eq!(e.len(), 2);
        let empty = IndexedKind.__elements((5i32..5, 3u64..=2));
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn extreme_ranges_count_and_index_right() {
        let r = IndexedKind.__elements((i8::MIN..=i8::MAX,));
        assert_eq!(r.len(), 256);
        assert_eq!(unsafe { r.get(0) }, (i8::MIN,));
        assert_eq!(unsafe { r.get(255) }, (i8::MAX,));
        let r = IndexedKind.__elements((u64::MAX - 2..u64::MAX,));
        assert_eq!(r.len(), 2);
        assert_eq!(unsafe { r.get(1) }, (u64::MAX - 1,));
        let r = IndexedKind.__elements((i64::MIN..i64::MIN + 3,));
        assert_eq!(unsafe { r.get(2) }, (i64::MIN + 2,));
    }

    #[test]
    fn other_iterators_are_pulled_and_zipped() {
        let names = ["a".to_string(), "b".to_string(), "c".to_string()];
        let iters = (names.iter().map(|s| s.len()), 0u32..);
        let _: PulledKind = (&&__elements_probe(&iters)).__futurize_elements_kind();
        let e = PulledKind.__elements(iters);
        let it = e.take_iter().expect("the iterator, once");
        assert_eq!(it.size_hint(), (3, Some(3)));
        assert_eq!(it.collect::<Vec<_>>(), vec![(1, 0), (1, 1), (1, 2)]);
        assert!(e.take_iter().is_none());
    }
}
