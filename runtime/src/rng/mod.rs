//! Parallel random numbers: one Xoshiro256++ stream per element.
//!
//! All streams of a call come from one base state. Stream `k` starts `k`
//! jumps of 2^128 steps into the base's sequence, so two streams overlap only
//! if a body draws 2^128 numbers; the 2^64 possible stream indices stay far
//! inside the period 2^256 − 1. A stream depends only on (base, k), never on
//! which worker runs it or when, so results are identical on every plan,
//! worker count and chunk size.
//!
//! `jump.rs` computes where a stream starts (one table jump from the stream
//! before it, or one polynomial per set bit of `k`); `element.rs` keeps the
//! stream of the element running on each thread and hands it out through
//! [`rng`]. A stream is started only when an element calls [`rng`].

mod element;
mod jump;

pub use element::{ElementRng, rng};
pub(crate) use element::{set_element, stream_scope, with_stream};

use crate::sync::lock;
use jump::State;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

fn words(bytes: [u8; 32]) -> State {
    let mut s = [0u64; 4];
    for (i, w) in s.iter_mut().enumerate() {
        *w = u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    }
    s
}

fn bytes(state: &State) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, w) in state.iter().enumerate() {
        b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// The streams of one call: element `i` uses stream `first + i` of `base`.
#[doc(hidden)]
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    base: State,
    first: u64,
}

impl Streams {
    /// Streams `0..` of the generator seeded with `seed`.
    pub fn from_seed(seed: u64) -> Streams {
        Streams {
            base: words(Xoshiro256PlusPlus::seed_from_u64(seed).state()),
            first: 0,
        }
    }

    /// The same base, starting `offset` streams later.
    pub(crate) fn skip(self, offset: u64) -> Streams {
        Streams {
            first: self.first + offset,
            ..self
        }
    }

    /// The generator of element `i`.
    pub fn generator(&self, i: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::from_seed(bytes(&jump::stream_start(&self.base, self.first + i)))
    }
}

/// `seed = ...` as written: a fixed seed, or `true` (the session's streams).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedSpec {
    /// `seed = true`: the next streams of the session (see [`set_seed`]).
    Session,
    /// `seed = n`: streams of the generator seeded with `n`, from stream 0.
    Fixed(u64),
}

impl SeedSpec {
    /// The streams for a call of `count` elements.
    pub(crate) fn streams(self, count: u64) -> Streams {
        match self {
            SeedSpec::Fixed(seed) => Streams::from_seed(seed),
            SeedSpec::Session => take_session_streams(count),
        }
    }
}

static SESSION: Mutex<Option<Streams>> = Mutex::new(None);

/// Sets the seed of the session: after `set_seed(s)`, the calls with
/// `seed = true` that follow take consecutive streams of the generator
/// seeded with `s`, so a program is reproducible as a whole (R's
/// `set.seed()`). Without it, the session's seed comes from the operating
/// system (`/dev/urandom`) once per process.
///
/// ```
/// use futurize::prelude::*;
/// set_seed(42);
/// let a: Vec<u64> = foreach!(i in 0..3 => rng().next_u64() %dofuture% seed = true).unwrap();
/// set_seed(42);
/// let b: Vec<u64> = foreach!(i in 0..3 => rng().next_u64() %dofuture% seed = true).unwrap();
/// assert_eq!(a, b);
/// ```
pub fn set_seed(seed: u64) {
    *lock(&SESSION) = Some(Streams::from_seed(seed));
}

fn os_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if from_os.is_ok() {
        return u64::from_le_bytes(b);
    }
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}

/// The next `count` streams of the session.
fn take_session_streams(count: u64) -> Streams {
    let mut session = lock(&SESSION);
    let streams = *session.get_or_insert_with(|| Streams::from_seed(os_seed()));
    *session = Some(streams.skip(count));
    streams
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    fn naive(seed: u64, k: u64) -> Xoshiro256PlusPlus {
        let mut g = Xoshiro256PlusPlus::seed_from_u64(seed);
        for _ in 0..k {
            g.jump();
        }
        g
    }

    #[test]
    fn stream_k_is_k_naive_jumps() {
        let s = Streams::from_seed(42);
        for k in [0u64, 1, 2, 3, 7, 64, 1000, 4097, 10_000] {
            assert_eq!(s.generator(k).state(), naive(42, k).state(), "stream {k}");
        }
    }

    #[test]
    fn the_library_jump_n_agrees_for_large_indices() {
        let s = Streams::from_seed(3);
        for k in [123_456u64, 1 << 40, u64::MAX / 3] {
            let mut g = Xoshiro256PlusPlus::seed_from_u64(3);
            g.jump_n(&[0, 0, k, 0]);
            assert_eq!(s.generator(k).state(), g.state(), "stream {k}");
        }
    }

    #[test]
    fn first_outputs_are_pinned() {
        let s = Streams::from_seed(42);
        let (mut a, mut b) = (s.generator(0), s.generator(1));
        let first: Vec<u64> = (0..2).map(|_| a.next_u64()).collect();
        let second: Vec<u64> = (0..2).map(|_| b.next_u64()).collect();
        // Stream 0 is the generator seeded with 42 itself.
        let mut plain = Xoshiro256PlusPlus::seed_from_u64(42);
        assert_eq!(first, vec![plain.next_u64(), plain.next_u64()]);
        assert_eq!(
            first,
            [15_021_278_609_987_233_951_u64, 5_881_210_131_331_364_753]
        );
        assert_eq!(
            second,
            [13_886_555_598_616_206_053_u64, 6_751_983_904_886_340_403]
        );
    }

    #[test]
    fn consecutive_elements_use_the_cursor_and_get_the_same_streams() {
        let s = Streams::from_seed(9);
        let via_cursor: Vec<u64> = (0..50)
            .map(|i| with_stream(Some(s), i, || rng().next_u64()))
            .collect();
        let direct: Vec<u64> = (0..50).map(|i| s.generator(i).next_u64()).collect();
        assert_eq!(via_cursor, direct);
    }

    #[test]
    #[should_panic(expected = "add `seed = true`")]
    fn rng_outside_a_seeded_body_says_how_to_fix_it() {
        rng().next_u64();
    }
}
