//! What a body sees of each capture and each loop item, by tag, with no
//! bound on the data: the types its closure is written against.
//!
//! The macros type a body's closure against the tags as the probes found
//! them ([`__typed`](super::__typed), `__typed_each`), and hand the engine
//! the tags that came back through the sendability check
//! ([`__checked`](super::__checked)). Typing asks only [`TagView`], so a
//! capture that cannot travel fails the check, once, in futurize's words,
//! and not again in serde's where the closure is typed. The invariant: each
//! `TagView::Ref` is the `Ref` of the same tag's `Capture` or `EachCapture`
//! impl, so the closure typed here is the one the engine runs.

use super::{MutRefTag, OwnedTag, RefTag};
use crate::body::capture::{BulkRefTag, BulkTag};
use crate::body::foreach_capture::{BorrowTag, CopyTag};

/// What the body sees of the capture or item a tag stands for.
pub trait TagView {
    /// The body's view.
    type Ref<'b>
    where
        Self: 'b;
}

impl<T> TagView for OwnedTag<T> {
    type Ref<'b>
        = T
    where
        Self: 'b;
}

impl<T> TagView for CopyTag<T> {
    type Ref<'b>
        = T
    where
        Self: 'b;
}

impl<T> TagView for BulkTag<T> {
    type Ref<'b>
        = Vec<T>
    where
        Self: 'b;
}

impl<T> TagView for BorrowTag<T> {
    type Ref<'b>
        = &'b T
    where
        Self: 'b;
}

/// Views by reference: the tag stands for a `&U`.
macro_rules! by_reference {
    ($($tag:ident),*) => {$(
        impl<U: ?Sized> TagView for $tag<U> {
            type Ref<'b>
                = &'b U
            where
                Self: 'b;
        }
    )*};
}

// A `&mut` capture is rejected by its own check; its view only keeps the
// closure typed meanwhile.
by_reference!(RefTag, BulkRefTag, MutRefTag);

macro_rules! tuple_view {
    ($($tag:ident),*) => {
        impl<$($tag: TagView),*> TagView for ($($tag,)*) {
            type Ref<'b>
                = ($($tag::Ref<'b>,)*)
            where
                Self: 'b;
        }
    };
}

tuple_view!();
tuple_view!(A);
tuple_view!(A, B);
tuple_view!(A, B, C);
tuple_view!(A, B, C, D);
tuple_view!(A, B, C, D, E);
tuple_view!(A, B, C, D, E, F);
tuple_view!(A, B, C, D, E, F, G);
tuple_view!(A, B, C, D, E, F, G, H);
tuple_view!(A, B, C, D, E, F, G, H, I);
tuple_view!(A, B, C, D, E, F, G, H, I, J);
tuple_view!(A, B, C, D, E, F, G, H, I, J, K);
tuple_view!(A, B, C, D, E, F, G, H, I, J, K, L);
