//! Collecting many futures: in the order they finish ([`as_completed`], as
//! Python's `concurrent.futures.as_completed`), or element by element as
//! they are needed ([`FutureVec`], R's listenv `x[[i]] %<-% { … }`).
//!
//! The invariant both keep: every future handed in is collected once (its
//! value taken, its output relayed) or dropped, and so cancelled, with the
//! collection that owns it; and a wait is for the future asked for, never
//! for the others.
//!
//! Waiting for "whichever finishes first" uses only [`Future::resolved`],
//! which never blocks: the futures not yet resolved are polled, with a pause
//! between rounds that doubles from 50 µs up to 5 ms while nothing resolves
//! and starts again at 50 µs when something does. A waiting caller costs a
//! few hundred polls a second, not a core, and hears of a finished future
//! at most 5 ms late. A round polls every future not yet resolved, which
//! also starts lazy ones and enforces `timeout`s; a future seen resolved is
//! not polled again.

use crate::sync::lock;
use crate::{Error, Future};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Index;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The first pause when no future has resolved, and the longest.
const FIRST_PAUSE: Duration = Duration::from_micros(50);
const LONGEST_PAUSE: Duration = Duration::from_millis(5);

/// Yields the values of `futures` in the order the futures resolve, each
/// with its position in `futures`: `(index, Result<T, Error>)`.
///
/// Every index comes once. Futures seen resolved in the same round come in
/// index order, so under `Sequential` (where a future is resolved when it
/// is created) the order is `0, 1, 2, …`. A body that panicked, timed out or
/// lost its worker comes as an `Err` at its index, and the others go on.
/// What a body printed is shown when its value is yielded.
///
/// Dropping the iterator before the end cancels the futures it has not
/// yielded, as dropping them would: a process backend stops their bodies;
/// on `Multithread` a body that has started runs to its end and its value
/// is discarded.
///
/// ```
/// use futurize::prelude::*;
/// use std::time::Duration;
///
/// let _g = with_plan(Multithread::workers(2));
/// let naps = [400u64, 10];
/// let fs: Vec<Future<u64>> = naps
///     .iter()
///     .map(|&ms| future!({
///         std::thread::sleep(Duration::from_millis(ms));
///         ms
///     }))
///     .collect();
/// let order: Vec<(usize, u64)> = as_completed(fs).map(|(i, v)| (i, v.unwrap())).collect();
/// assert_eq!(order, vec![(1, 10), (0, 400)]); // the short nap first
/// ```
///
/// Failures come at their index:
///
/// ```
/// use futurize::prelude::*;
///
/// let fs: Vec<Future<i32>> = vec![future!(1), future!(panic!("no data")), future!(3)];
/// let mut sum = 0;
/// for (i, v) in as_completed(fs) {
///     match v {
///         Ok(x) => sum += x,
///         Err(e) => assert!(i == 1 && e.to_string().ends_with("no data")),
///     }
/// }
/// assert_eq!(sum, 4);
/// ```
pub fn as_completed<T: DeserializeOwned>(
    futures: impl IntoIterator<Item = Future<T>>,
) -> AsCompleted<T> {
    AsCompleted {
        order: InCompletionOrder::new(futures),
    }
}

/// The iterator of [`as_completed`]: `(index, Result<T, Error>)` in the order
/// the futures resolve. Dropping it cancels the futures not yet yielded.
#[must_use = "an iterator does nothing unless consumed; dropping it cancels the futures"]
pub struct AsCompleted<T> {
    order: InCompletionOrder<Future<T>>,
}

impl<T: DeserializeOwned> Iterator for AsCompleted<T> {
    type Item = (usize, Result<T, Error>);

    /// Waits for the next future to resolve, and collects it.
    fn next(&mut self) -> Option<Self::Item> {
        let (i, future) = self.order.next_resolved()?;
        Some((i, future.collect()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.order.len();
        (n, Some(n))
    }
}

impl<T: DeserializeOwned> ExactSizeIterator for AsCompleted<T> {}

impl<T: DeserializeOwned> FusedIterator for AsCompleted<T> {}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting: Vec<usize> = self.order.pending.iter().map(|(i, _)| *i).collect();
        let resolved: Vec<usize> = self.order.ready.iter().map(|(i, _)| *i).collect();
        f.debug_struct("AsCompleted")
            .field("resolved", &resolved)
            .field("waiting", &waiting)
            .finish()
    }
}

/// What the wait needs of a computation: whether it is done, without
/// blocking, and its value. A [`Future`]; a stand-in in the unit tests.
trait Pending {
    type Output;
    fn is_resolved(&self) -> bool;
    fn collect(self) -> Result<Self::Output, Error>;
}

impl<T: DeserializeOwned> Pending for Future<T> {
    type Output = T;
    fn is_resolved(&self) -> bool {
        self.resolved()
    }
    fn collect(self) -> Result<T, Error> {
        self.value()
    }
}

/// Computations with their positions, handed out as they resolve.
struct InCompletionOrder<P> {
    /// Not yet seen resolved, in index order.
    pending: Vec<(usize, P)>,
    /// Seen resolved and not yet handed out, in the order they were seen.
    ready: VecDeque<(usize, P)>,
    backoff: Backoff,
}

impl<P: Pending> InCompletionOrder<P> {
    fn new(items: impl IntoIterator<Item = P>) -> Self {
        InCompletionOrder {
            pending: items.into_iter().enumerate().collect(),
            ready: VecDeque::new(),
            backoff: Backoff::new(),
        }
    }

    /// How many are left to hand out.
    fn len(&self) -> usize {
        self.pending.len() + self.ready.len()
    }

    /// The next resolved computation, waiting for one if none is; `None`
    /// once all have been handed out.
    fn next_resolved(&mut self) -> Option<(usize, P)> {
        loop {
            if let Some(next) = self.ready.pop_front() {
                return Some(next);
            }
            if self.pending.is_empty() {
                return None;
            }
            self.poll();
            if self.ready.is_empty() {
                std::thread::sleep(self.backoff.pause());
            } else {
                self.backoff.reset();
            }
        }
    }

    /// One round: asks every pending computation (not stopping at the
    /// first resolved, so each lazy one starts and each deadline is checked)
    /// and moves the resolved ones to `ready`.
    fn poll(&mut self) {
        self.ready
            .extend(self.pending.extract_if(.., |(_, p)| p.is_resolved()));
    }
}

/// The pause between polling rounds while nothing resolves.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: FIRST_PAUSE }
    }

    /// How long to pause now; the next pause is twice as long, up to the
    /// longest.
    fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(LONGEST_PAUSE);
        now
    }

    /// Something resolved: the next wait starts short again.
    fn reset(&mut self) {
        self.next = FIRST_PAUSE;
    }
}

/// A growing list of futures whose elements are read as values, each
/// waited for when it is first read: R's listenv pattern
/// `x[[i]] %<-% { … }`, then `x[[i]]`.
///
/// [`get`](FutureVec::get) waits for that one element only and keeps its
/// value (or its error) for later reads; `x[i]` does the same and panics
/// with the error's message when the element failed;
/// [`values`](FutureVec::values) takes them all, in order.
///
/// ```
/// use futurize::prelude::*;
///
/// let mut x = FutureVec::new();
/// for i in 0..4u64 {
///     x.push(future!(i * i));
/// }
/// assert_eq!(x[3], 9);
/// assert_eq!(*x.get(2)?, 4);
/// assert_eq!(x.values()?, vec![0, 1, 4, 9]);
/// # Ok::<(), futurize::Error>(())
/// ```
///
/// Elements run on the plan's workers meanwhile, and a fast one can be read
/// while a slow one still runs:
///
/// ```
/// use futurize::prelude::*;
/// use std::time::{Duration, Instant};
///
/// let _g = with_plan(Multithread::workers(2));
/// let start = Instant::now();
/// let mut x = FutureVec::new();
/// x.push(future!({
///     std::thread::sleep(Duration::from_millis(500));
///     "slow"
/// }.to_string()));
/// x.push(future!("fast".to_string()));
/// assert_eq!(x[1], "fast");
/// assert!(start.elapsed() < Duration::from_millis(400));
/// assert!(!x.resolved(0));
/// assert_eq!(x[0], "slow");
/// ```
pub struct FutureVec<T> {
    slots: Vec<Slot<T>>,
}

/// One element: its future until it is collected, then its value.
struct Slot<T> {
    /// Taken out (under the lock) by the one reader that collects it.
    future: Mutex<Option<Future<T>>>,
    value: OnceLock<Result<T, Error>>,
}

impl<T: DeserializeOwned> Slot<T> {
    /// Waits for the future and collects it; called once, inside the cell.
    fn collect(&self, i: usize) -> Result<T, Error> {
        let future = lock(&self.future).take();
        future.unwrap_or_else(|| lost(i)).value()
    }

    fn into_value(self, i: usize) -> Result<T, Error> {
        match self.value.into_inner() {
            Some(result) => result,
            None => self
                .future
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(|| lost(i))
                .value(),
        }
    }
}

/// The future of element `i` was taken by a collection that panicked
/// before storing its value (relaying the body's output failed).
fn lost(i: usize) -> ! {
    panic!("element {i} of the FutureVec was lost: collecting its value panicked earlier")
}

impl<T> FutureVec<T> {
    /// An empty list.
    pub fn new() -> Self {
        FutureVec { slots: Vec::new() }
    }

    /// Adds a future at the end; it is element `len() - 1` from now on.
    pub fn push(&mut self, future: Future<T>) {
        self.slots.push(Slot {
            future: Mutex::new(Some(future)),
            value: OnceLock::new(),
        });
    }

    /// How many elements there are, resolved or not.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing has been pushed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, i: usize) -> &Slot<T> {
        self.slots.get(i).unwrap_or_else(|| {
            panic!(
                "index {i} is out of range for a FutureVec of length {}",
                self.len()
            )
        })
    }
}

impl<T: DeserializeOwned> FutureVec<T> {
    /// The value of element `i`, waiting for that element only. The first
    /// read collects it (and shows what its body printed); later reads
    /// return the same value, or a clone of the same error, at once.
    ///
    /// ```
    /// use futurize::prelude::*;
    /// let mut x = FutureVec::new();
    /// x.push(future!(vec![1, 2, 3]));
    /// x.push(future!(panic!("bad input")));
    /// assert_eq!(x.get(0).unwrap().len(), 3);
    /// assert!(x.get(1).unwrap_err().to_string().ends_with("bad input"));
    /// ```
    ///
    /// # Errors
    /// The element's error, as [`Future::value`] gives it.
    ///
    /// # Panics
    /// When `i` is not less than [`len`](FutureVec::len).
    pub fn get(&self, i: usize) -> Result<&T, Error> {
        let slot = self.slot(i);
        match slot.value.get_or_init(|| slot.collect(i)) {
            Ok(value) => Ok(value),
            Err(e) => Err(e.clone()),
        }
    }

    /// True once element `i` is resolved (or collected); never blocks.
    /// False while another thread is collecting it.
    ///
    /// # Panics
    /// When `i` is not less than [`len`](FutureVec::len).
    pub fn resolved(&self, i: usize) -> bool {
        let slot = self.slot(i);
        slot.value.get().is_some() || lock(&slot.future).as_ref().is_some_and(Future::resolved)
    }

    /// All the values, in order, waiting for those not yet read.
    ///
    /// # Errors
    /// The first failed element's error, in element order; the futures after
    /// it are dropped, and so cancelled.
    pub fn values(self) -> Result<Vec<T>, Error> {
        self.slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| slot.into_value(i))
            .collect()
    }
}

/// `x[i]`: [`get`](FutureVec::get), panicking with the element's error.
///
/// ```should_panic
/// use futurize::prelude::*;
/// let mut x = FutureVec::new();
/// x.push(future!(panic!("no such file")));
/// let _: &u8 = &x[0]; // panics: a future panicked at …: no such file
/// ```
impl<T: DeserializeOwned> Index<usize> for FutureVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}

impl<T> Default for FutureVec<T> {
    fn default() -> Self {
        FutureVec::new()
    }
}

impl<T> FromIterator<Future<T>> for FutureVec<T> {
    /// ```
    /// use futurize::prelude::*;
    /// let x: FutureVec<u32> = (1..=3u32).map(|i| future!(i * 10)).collect();
    /// assert_eq!(x.values().unwrap(), vec![10, 20, 30]);
    /// ```
    fn from_iter<I: IntoIterator<Item = Future<T>>>(futures: I) -> Self {
        let mut x = FutureVec::new();
        futures.into_iter().for_each(|f| x.push(f));
        x
    }
}

impl<T> fmt::Debug for FutureVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let states = self.slots.iter().map(|slot| match slot.value.get() {
            Some(Ok(_)) => "collected",
            Some(Err(_)) => "failed",
            None => "pending",
        });
        f.debug_list().entries(states).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    /// A stand-in for a future: resolved when its flag is set; counts its
    /// drops so a test sees what was given up.
    struct Flagged {
        value: u32,
        done: Arc<AtomicBool>,
        polls: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }

    impl Pending for Flagged {
        type Output = u32;
        fn is_resolved(&self) -> bool {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.done.load(Ordering::Acquire)
        }
        fn collect(self) -> Result<u32, Error> {
            Ok(self.value)
        }
    }

    impl Drop for Flagged {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Bench {
        flags: Vec<Arc<AtomicBool>>,
        polls: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }

    fn bench(n: usize) -> (Bench, InCompletionOrder<Flagged>) {
        let b = Bench {
            flags: (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect(),
            polls: Arc::default(),
            dropped: Arc::default(),
        };
        let items: Vec<Flagged> = (0..n)
            .map(|i| Flagged {
                value: i as u32 * 10,
                done: b.flags[i].clone(),
                polls: b.polls.clone(),
                dropped: b.dropped.clone(),
            })
            .collect();
        (b, InCompletionOrder::new(items))
    }

    fn finish_after(flag: &Arc<AtomicBool>, ms: u64) {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            flag.store(true, Ordering::Release);
        });
    }

    #[test]
    fn collect_yields_each_index_once_in_the_order_they_resolve() {
        let (b, mut order) = bench(3);
        finish_after(&b.flags[0], 150);
        finish_after(&b.flags[1], 10);
        finish_after(&b.flags[2], 80);
        let mut seen = Vec::new();
        while let Some((i, p)) = order.next_resolved() {
            assert_eq!(p.collect().unwrap(), i as u32 * 10);
            seen.push(i);
        }
        assert_eq!(seen, vec![1, 2, 0]);
        assert_eq!(order.next_resolved().map(|(i, _)| i), None);
    }

    #[test]
    fn collect_yields_those_resolved_together_in_index_order_polling_each_once() {
        let (b, mut order) = bench(4);
        b.flags
            .iter()
            .for_each(|f| f.store(true, Ordering::Release));
        let seen: Vec<usize> =
            std::iter::from_fn(|| order.next_resolved().map(|(i, _)| i)).collect();
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert_eq!(
            b.polls.load(Ordering::Relaxed),
            4,
            "one round, every one asked"
        );
    }

    #[test]
    fn collect_counts_what_is_left_and_drops_it_when_given_up() {
        let (b, mut order) = bench(3);
        b.flags[2].store(true, Ordering::Release);
        assert_eq!(order.len(), 3);
        let (i, first) = order.next_resolved().unwrap();
        assert_eq!((i, order.len()), (2, 2));
        drop(first);
        assert_eq!(b.dropped.load(Ordering::Relaxed), 1);
        drop(order);
        assert_eq!(b.dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn collect_waits_without_spinning() {
        let (b, mut order) = bench(1);
        finish_after(&b.flags[0], 200);
        let start = Instant::now();
        assert_eq!(order.next_resolved().map(|(i, _)| i), Some(0));
        assert!(start.elapsed() < Duration::from_millis(300));
        // 200 ms at pauses growing to 5 ms: some 40 rounds, not millions.
        let polls = b.polls.load(Ordering::Relaxed);
        assert!(polls < 100, "{polls} polls in 200 ms");
    }

    #[test]
    fn collect_backoff_doubles_up_to_the_longest_and_starts_again() {
        let mut b = Backoff::new();
        let pauses: Vec<Duration> = (0..9).map(|_| b.pause()).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(pauses[8], LONGEST_PAUSE);
        b.reset();
        assert_eq!(b.pause(), FIRST_PAUSE);
    }

    #[test]
    fn collect_handles_cross_threads() {
        fn shared<S: Send + Sync>() {}
        fn sent<S: Send>() {}
        shared::<FutureVec<String>>();
        sent::<AsCompleted<String>>();
    }

    #[test]
    fn collect_an_empty_list_ends_at_once() {
        let (_b, mut order) = bench(0);
        assert_eq!(order.len(), 0);
        assert!(order.next_resolved().is_none());
    }
}
