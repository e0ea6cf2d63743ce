//! The stream of the element running on this thread, and [`rng`], the handle
//! a body draws from.
//!
//! Invariant: while an element holds a handle, `THREAD.state` is that
//! element's generator. [`rng`] makes it so (starting the element's stream at
//! its first call), every draw continues it, and a [`StreamScope`] (a chunk, a
//! future, a seeded call nested in an element) puts back what it replaced, so
//! the handles of an enclosing element find their generator again. A draw
//! therefore needs no check: it reads and writes four words of one
//! thread-local, which LLVM keeps in registers across a loop of draws, as it
//! does a generator held in a local variable.

use super::Streams;
use super::jump::{self, State};
use rand_core::{Infallible, SeedableRng, TryRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::cell::Cell;
use std::marker::PhantomData;

/// A stream this many past the cursor is reached by table jumps (about
/// 20 ns each) rather than by one polynomial per set bit (about 240 ns each).
const NEAR: u64 = 32;

/// Everything [`rng`] reads, in one thread-local.
struct ThreadStreams {
    /// The streams of the call (or future) running on this thread.
    streams: Cell<Option<Streams>>,
    /// The element running now, in those streams.
    index: Cell<u64>,
    /// The element whose generator `state` is, if one has drawn in the scope.
    drawing: Cell<Option<u64>>,
    /// That generator's state.
    state: Cell<State>,
    /// The last stream this thread started (the cursor): its base, its
    /// number and its start. The next stream is one table jump away.
    cursor_base: Cell<State>,
    cursor_stream: Cell<u64>,
    cursor_start: Cell<State>,
}

thread_local! {
    static THREAD: ThreadStreams = const {
        ThreadStreams {
            streams: Cell::new(None),
            index: Cell::new(0),
            drawing: Cell::new(None),
            state: Cell::new([0; 4]),
            // All zero: a base equal to it has all-zero streams, which is
            // what this cursor gives, so even that base is served right.
            cursor_base: Cell::new([0; 4]),
            cursor_stream: Cell::new(0),
            cursor_start: Cell::new([0; 4]),
        }
    };
}

/// The streams [`rng`] draws from while it lives (a chunk, a future); what
/// it replaced comes back when it ends, so a seeded call nested in an
/// element leaves that element's own stream where it was.
pub(crate) struct StreamScope {
    streams: Option<Streams>,
    index: u64,
    drawing: Option<u64>,
    state: State,
}

impl Drop for StreamScope {
    fn drop(&mut self) {
        THREAD.with(|t| {
            t.streams.set(self.streams);
            t.index.set(self.index);
            t.drawing.set(self.drawing);
            t.state.set(self.state);
        });
    }
}

/// Makes `streams` the ones [`rng`] draws from until the scope ends; each
/// element then says which it is with [`set_element`].
pub(crate) fn stream_scope(streams: Streams) -> StreamScope {
    THREAD.with(|t| StreamScope {
        streams: t.streams.replace(Some(streams)),
        index: t.index.get(),
        drawing: t.drawing.replace(None),
        state: t.state.get(),
    })
}

/// Element `index` of the current scope's streams runs next: one
/// thread-local write, as no generator is made until the element draws.
#[inline(always)]
pub(crate) fn set_element(index: u64) {
    THREAD.with(|t| t.index.set(index));
}

/// Runs `f` with element `index` of `streams` as the stream [`rng`] draws from
/// (nothing changes when `streams` is `None`).
pub(crate) fn with_stream<R>(streams: Option<Streams>, index: u64, f: impl FnOnce() -> R) -> R {
    let Some(streams) = streams else { return f() };
    let _scope = stream_scope(streams);
    set_element(index);
    f()
}

/// The start of stream `k` of `base`, from the thread's last stream when `k`
/// is a little past it.
fn start_of(t: &ThreadStreams, base: &State, k: u64) -> State {
    let last = t.cursor_stream.get();
    let start = if t.cursor_base.get() == *base && last <= k && k - last <= NEAR {
        (last..k).fold(t.cursor_start.get(), |s, _| jump::next_stream(&s))
    } else {
        t.cursor_base.set(*base);
        jump::stream_start(base, k)
    };
    t.cursor_stream.set(k);
    t.cursor_start.set(start);
    start
}

/// The random stream of the element (or future) being evaluated.
///
/// Inside a body run with `seed = true` (or `seed = n`), `rng()` draws from
/// that element's own stream: the numbers depend only on the seed and the
/// element's index, never on the plan. It implements `rand_core`'s `Rng`
/// (`TryRng` with no error), so `rand` and `rand_distr` work on it.
///
/// The first `rng()` of an element starts its stream (one jump of about
/// 20 ns from the stream of the element before it on the same thread); a
/// draw then costs what it costs on a Xoshiro256++ held in a local variable.
/// Holding the handle (`let mut r = rng();`) across a loop of draws is the
/// fastest; `rng()` per draw also works, at under a nanosecond more per draw.
/// The handle is for the element that made it: it cannot leave its thread,
/// and a later element calls `rng()` again.
///
/// Only futurize's `rng()` is reproducible. A helper that a seeded body calls
/// and that draws from `rand::rng()` (or any generator seeded from the
/// system) gives different numbers on every run and every plan, silently:
/// the compile-time check sees only the body itself. Give such helpers a
/// `&mut impl Rng` parameter and pass them `&mut rng()`.
///
/// # Panics
/// When called outside a body that has a seed (from a helper function
/// reached from a body without `seed`, say). The panic points at this call
/// and says how to give the body a seed.
///
/// ```
/// use futurize::prelude::*;
/// let draws: Vec<u64> = foreach!(i in 0..4 => rng().next_u64() %dofuture% seed = 7).unwrap();
/// let again: Vec<u64> = foreach!(i in 0..4 => rng().next_u64() %dofuture% seed = 7).unwrap();
/// assert_eq!(draws, again);
/// ```
#[inline]
#[track_caller]
pub fn rng() -> ElementRng {
    let started = THREAD.with(|t| t.drawing.get() == Some(t.index.get()));
    if !started {
        start_drawing();
    }
    ElementRng {
        _this_thread: PhantomData,
    }
}

/// Starts the stream of the element running now (its first `rng()`).
#[cold]
#[inline(never)]
#[track_caller]
fn start_drawing() {
    let started = THREAD.with(|t| {
        let streams = t.streams.get()?;
        let index = t.index.get();
        t.state
            .set(start_of(t, &streams.base, streams.first + index));
        t.drawing.set(Some(index));
        Some(())
    });
    if started.is_none() {
        panic!(
            "futurize::rng() was called outside a body with a seed: add `seed = true` \
             (or `seed = 42` for a fixed seed) to the foreach!, future! or #[futurize] \
             call whose body reaches this rng(), or call rng() only inside such a body"
        );
    }
}

/// The handle [`rng`] returns: draws from the current element's stream.
///
/// It stays on the thread that made it (it is neither `Send` nor `Sync`).
///
/// ```
/// use futurize::prelude::*;
/// use futurize::ElementRng;
/// fn roll(r: &mut ElementRng) -> u64 {
///     r.next_u64() % 6 + 1
/// }
/// let dice: Vec<u64> = foreach!(i in 0..3 => roll(&mut rng()) %dofuture% seed = 1).unwrap();
/// assert!(dice.iter().all(|d| (1..=6).contains(d)));
/// ```
#[derive(Debug)]
pub struct ElementRng {
    _this_thread: PhantomData<*const ()>,
}

impl ElementRng {
    /// Runs `f` on the element's generator as a library `Xoshiro256PlusPlus`.
    fn with_generator<R>(&mut self, f: impl FnOnce(&mut Xoshiro256PlusPlus) -> R) -> R {
        THREAD.with(|t| {
            let mut generator = Xoshiro256PlusPlus::from_seed(super::bytes(&t.state.get()));
            let drawn = f(&mut generator);
            t.state.set(super::words(generator.state()));
            drawn
        })
    }
}

impl TryRng for ElementRng {
    type Error = Infallible;

    /// The high half of [`try_next_u64`](Self::try_next_u64), as the library
    /// generator's `next_u32`.
    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    /// Xoshiro256++'s output and state update, on the thread-local state.
    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(THREAD.with(|t| {
            debug_assert_eq!(
                t.drawing.get(),
                Some(t.index.get()),
                "an ElementRng used after the element that made it"
            );
            let mut s = t.state.get();
            let drawn = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
            jump::step(&mut s);
            t.state.set(s);
            drawn
        }))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.with_generator(|g| g.try_fill_bytes(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn draws_are_the_library_generators_draws() {
        let s = Streams::from_seed(17);
        with_stream(Some(s), 3, || {
            let mut library = s.generator(3);
            let mut r = rng();
            for n in 0..100 {
                assert_eq!(r.next_u64(), library.next_u64(), "u64 {n}");
                assert_eq!(rng().next_u32(), library.next_u32(), "u32 {n}");
                let (mut a, mut b) = ([0u8; 13], [0u8; 13]);
                r.fill_bytes(&mut a);
                library.fill_bytes(&mut b);
                assert_eq!(a, b, "bytes {n}");
            }
        });
    }

    #[test]
    fn elements_out_of_order_get_their_own_streams() {
        let s = Streams::from_seed(4).skip(1000);
        let _scope = stream_scope(s);
        // Ahead by one, by a few, by many, back; the cursor follows each.
        for i in [0u64, 1, 5, 5 + NEAR, 300, 2, 1 << 20, 7] {
            set_element(i);
            let mut r = rng();
            let mut own = s.generator(i);
            assert_eq!(
                (r.next_u64(), r.next_u64()),
                (own.next_u64(), own.next_u64()),
                "element {i}"
            );
        }
        // Element 7 again, right after itself: its generator goes on.
        set_element(7);
        let mut own = s.generator(7);
        own.next_u64();
        own.next_u64();
        assert_eq!(rng().next_u64(), own.next_u64());
    }

    #[test]
    fn a_handle_held_across_a_nested_scope_continues_its_stream() {
        let (outer, inner) = (Streams::from_seed(1), Streams::from_seed(2));
        with_stream(Some(outer), 4, || {
            let mut r = rng();
            let first = r.next_u64();
            let nested = with_stream(Some(inner), 0, || rng().next_u64());
            let second = r.next_u64();
            let mut own = outer.generator(4);
            assert_eq!((first, second), (own.next_u64(), own.next_u64()));
            assert_eq!(nested, inner.generator(0).next_u64());
        });
    }
}
