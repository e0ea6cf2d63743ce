//! Values written in place: the output of a call over indexed elements has
//! room for one value per element from the start, and each chunk writes its
//! values straight into its own range of it (rayon's `collect` model), from
//! whichever thread runs it.
//!
//! Invariant: a slot is written at most once, by the one chunk whose range
//! holds it; a chunk whose elements all succeeded leaves its values in
//! place, a chunk with a failure moves its values out into its own
//! [`ChunkOutput`] as it ends. So when no chunk failed and every chunk ran,
//! the output is complete and becomes the call's `Vec` as it is.

use super::elements::Elements;
use crate::body::chunk::{ChunkOutput, Failure, Watch};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Room for `len` values, written from several threads.
pub(super) struct Slots<R> {
    /// Length 0, capacity `len`: the values live in its spare capacity until
    /// [`into_full`](Slots::into_full) sets the length.
    values: Vec<R>,
    ptr: *mut R,
    len: usize,
}

// SAFETY: threads only write disjoint slots (each through `chunk`, whose
// caller owns the range) and move values out of slots they wrote; values
// cross threads that way, hence `R: Send`.
unsafe impl<R: Send> Sync for Slots<R> {}
// SAFETY: as above; the vector itself moves with the value.
unsafe impl<R: Send> Send for Slots<R> {}

impl<R> Slots<R> {
    pub(super) fn new(len: usize) -> Self {
        let mut values = Vec::with_capacity(len);
        let ptr = values.as_mut_ptr();
        Slots { values, ptr, len }
    }

    /// How many slots there are.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The slots `range`, to be written.
    ///
    /// # Safety
    /// `range` is inside `0..len`, and nothing else reads or writes its
    /// slots while the returned borrow lives.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(super) unsafe fn chunk(&self, range: Range<usize>) -> &mut [MaybeUninit<R>] {
        debug_assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: the range lies inside the allocation (capacity `len`),
        // `MaybeUninit<R>` has `R`'s layout, and the caller gives this
        // borrow sole access to those slots.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.add(range.start).cast::<MaybeUninit<R>>(),
                range.len(),
            )
        }
    }

    /// Moves the values of slots `range`, skipping the positions in `skip`
    /// (relative to `range.start`, ascending), out into a `Vec`.
    ///
    /// # Safety
    /// Every slot of `range` not in `skip` was written and is not read or
    /// moved again (by this or another call).
    pub(super) unsafe fn take(&self, range: Range<usize>, skip: &[(u32, Failure)]) -> Vec<R> {
        debug_assert!(range.end <= self.len);
        let mut skip = skip.iter().map(|(p, _)| *p as usize).peekable();
        let mut out = Vec::with_capacity(range.len());
        for (p, i) in range.enumerate() {
            if skip.next_if_eq(&p).is_some() {
                continue;
            }
            // SAFETY: by the caller's promise slot `i` holds a value that
            // nothing reads again, so moving it out leaves no second owner.
            out.push(unsafe { self.ptr.add(i).read() });
        }
        out
    }

    /// The values of all slots, in order.
    ///
    /// # Safety
    /// Every slot was written and none was moved out.
    pub(super) unsafe fn into_full(mut self) -> Vec<R> {
        // SAFETY: the capacity is `len` and all `len` slots hold values.
        unsafe { self.values.set_len(self.len) };
        std::mem::take(&mut self.values)
    }
}

// Dropping `Slots` frees the room but drops no value: the values still in
// place when a call ends without `into_full` (only when the call's own code
// panicked) are leaked, which is safe; every other path moves them out.

/// Runs the elements `range` through `run`, writing each value into its
/// slot: each element under a panic catcher (one catcher covers a run of
/// elements, renewed after a panic), nothing checked between elements but
/// what `watch` does. Under `stop_at_failure` the chunk ends at its first
/// failure. A chunk with failures moves its values out of the slots into
/// its output before it returns.
pub(super) fn run_chunk_in_place<R, S: Elements, W: Watch>(
    range: Range<usize>,
    source: &S,
    run: impl Fn(usize, S::Item) -> R,
    slots: &Slots<R>,
    stop_at_failure: bool,
    watch: &mut W,
) -> ChunkOutput<R> {
    let mut failures: Vec<(u32, Failure)> = Vec::new();
    let mut next = range.start;
    while next < range.end {
        // How many elements of `next..` this run of the loop has finished.
        let mut done = 0;
        let outcome = crate::body::catch(|| {
            // SAFETY: the slots of `next..range.end` are this chunk's alone
            // (its range is handed out once) and not written yet.
            let out = unsafe { slots.chunk(next..range.end) };
            // SAFETY: the chunk lies inside `0..source.len()`.
            unsafe {
                fill(
                    out,
                    next - range.start,
                    next,
                    source,
                    &run,
                    watch,
                    &mut done,
                )
            }
        });
        let failure = match outcome {
            Ok(None) => None,
            Ok(Some(failure)) => Some(failure),
            Err(panic) => {
                // The element after the finished ones panicked.
                done += 1;
                if W::ACTIVE {
                    let _ = watch.finished(next + done - 1 - range.start);
                }
                Some(Failure::Panicked(panic))
            }
        };
        next += done;
        if let Some(failure) = failure {
            failures.push(((next - 1 - range.start) as u32, failure));
            if stop_at_failure {
                break;
            }
        }
    }
    let values = if failures.is_empty() {
        Vec::new()
    } else {
        // SAFETY: the slots of `range.start..next` were written by this
        // chunk, except the failed ones, which `take` skips; nothing else
        // reads them (the output keeps them from now on).
        unsafe { slots.take(range.start..next, &failures) }
    };
    ChunkOutput::of(values, None, failures)
}

/// Fills `out` with the values of elements `first..`, counting in `done`
/// those that finished (written, or failed by the watch, which ends the
/// run). A function of its own, not inlined, so that its borrows keep
/// their promises to the compiler (`out` unique, `source` and `run`
/// unchanging), and the count is written once (or as a panic passes): the
/// loop's state then stays in registers and a body that cannot panic may be
/// vectorized.
///
/// # Safety
/// Elements `first..first + out.len()` are inside `0..source.len()`.
#[inline(never)]
unsafe fn fill<R, S: Elements, W: Watch>(
    out: &mut [MaybeUninit<R>],
    position: usize,
    first: usize,
    source: &S,
    run: &impl Fn(usize, S::Item) -> R,
    watch: &mut W,
    done: &mut usize,
) -> Option<Failure> {
    /// Writes the count when the loop ends, by return or by panic.
    struct Count<'a> {
        done: &'a mut usize,
        finished: usize,
    }
    impl Drop for Count<'_> {
        fn drop(&mut self) {
            *self.done = self.finished;
        }
    }
    let mut count = Count { done, finished: 0 };
    for (k, slot) in out.iter_mut().enumerate() {
        if W::ACTIVE {
            watch.started(position + k);
        }
        // SAFETY: `first + k` is inside the source (the caller's promise).
        let v = run(first + k, unsafe { source.get(first + k) });
        count.finished = k + 1;
        if W::ACTIVE
            && let Some(failure) = watch.finished(position + k)
        {
            drop(v);
            return Some(failure);
        }
        slot.write(v);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::chunk::Unwatched;
    use crate::map::elements::IndexedKind;
    use std::sync::Arc;

    #[test]
    fn chunks_from_two_threads_fill_every_slot() {
        let slots = Slots::<String>::new(1000);
        let source = IndexedKind.__elements((1000u32..2000,));
        std::thread::scope(|s| {
            for half in [0..500, 500..1000] {
                let (slots, source) = (&slots, &source);
                s.spawn(move || {
                    let out = run_chunk_in_place(
                        half,
                        source,
                        |i, (x,)| format!("v{i}/{x}"),
                        slots,
                        true,
                        &mut Unwatched,
                    );
                    assert!(out.values.is_empty() && out.failures.is_empty());
                });
            }
        });
        // SAFETY: both chunks ran every element without failing.
        let all = unsafe { slots.into_full() };
        assert_eq!(all.len(), 1000);
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, v)| *v == format!("v{i}/{}", i + 1000))
        );
    }

    #[test]
    fn a_failed_chunk_moves_its_values_out_and_drops_each_once() {
        let counted = Arc::new(());
        let slots = Slots::<Arc<()>>::new(10);
        let out = run_chunk_in_place(
            2..8,
            &IndexedKind.__elements((0..10usize,)),
            |i, _| {
                if i == 4 || i == 6 {
                    panic!("element {i}");
                }
                counted.clone()
            },
            &slots,
            false,
            &mut Unwatched,
        );
        let failed: Vec<u32> = out.failures.iter().map(|(p, _)| *p).collect();
        assert_eq!(failed, vec![2, 4]);
        assert_eq!(out.values.len(), 4, "elements 2, 3, 5, 7");
        assert_eq!(Arc::strong_count(&counted), 5);
        drop(out);
        drop(slots);
        assert_eq!(
            Arc::strong_count(&counted),
            1,
            "no value dropped twice or kept"
        );
    }

    #[test]
    fn stop_at_failure_ends_the_chunk_there() {
        let slots = Slots::<usize>::new(10);
        let out = run_chunk_in_place(
            0..10,
            &IndexedKind.__elements((0..10usize,)),
            |i, _| {
                assert!(i != 3, "three");
                i * 10
            },
            &slots,
            true,
            &mut Unwatched,
        );
        assert_eq!(out.values, vec![0, 10, 20]);
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].0, 3);
        match &out.failures[0].1 {
            Failure::Panicked(p) => assert!(p.message.contains("three"), "{}", p.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_watch_failure_replaces_the_value() {
        struct FailOdd;
        impl Watch for FailOdd {
            fn started(&mut self, _: usize) {}
            fn finished(&mut self, p: usize) -> Option<Failure> {
                (p % 2 == 1).then(|| Failure::TimedOut { after: "1s".into() })
            }
        }
        let slots = Slots::<Vec<u8>>::new(4);
        let out = run_chunk_in_place(
            0..4,
            &IndexedKind.__elements((0..4u8,)),
            |_, (x,)| vec![x; 3],
            &slots,
            false,
            &mut FailOdd,
        );
        assert_eq!(out.values, vec![vec![0; 3], vec![2; 3]]);
        assert_eq!(out.failures.len(), 2);
    }
}
