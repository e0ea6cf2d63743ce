//! Parallel random numbers: one Xoshiro256++ stream per element.
//!
//! All streams of a call come from one base state. Stream `k` starts `k`
//! jumps of 2^128 steps into the base's sequence, so two streams overlap only
//! if a body draws 2^128 numbers; the 2^64 possible stream indices stay far
//! inside the period 2^256 − 1. A stream depends only on (base, k), never on
//! which worker runs it or when, so results are identical on every plan,
//! worker count and chunk size.
//!
//! Deriving stream `k` costs one jump per set bit of `k`: the jump
//! polynomials x^(2^(128+j)) mod P(x) (P the generator's characteristic
//! polynomial over GF(2)) are computed once per process by repeated
//! squaring, and applying one is the usual 256-step jump. A per-thread cursor
//! makes the next stream of a run of elements a single jump. Streams are made
//! only when a body calls [`rng`].

use crate::sync::lock;
use rand_core::{Infallible, SeedableRng, TryRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::sync::{Mutex, OnceLock};

/// The generator's state as four words (its `state()` bytes, little-endian).
type State = [u64; 4];

/// x^(2^128) mod P: the polynomial of `Xoshiro256PlusPlus::jump`.
const JUMP_2_128: State = [
    0x180e_c6d3_3cfd_0aba,
    0xd5a6_1266_f0c9_392c,
    0xa958_2618_e03f_c9aa,
    0x39ab_dc45_29b1_661c,
];

/// P(x) − x^256, the characteristic polynomial of xoshiro256's linear engine.
const CHARPOLY: State = [
    0x9d11_6f2b_b0f0_f001,
    0x0280_002b_cefd_1a5e,
    0x04b4_edcf_2625_9f85,
    0x0003_c03c_3f3e_cb19,
];

/// One step of the linear engine (the state update of `next_u64`).
fn step(s: &mut State) {
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
}

/// Applies a jump polynomial to a state.
fn apply(poly: &State, state: State) -> State {
    let (mut acc, mut cur) = ([0u64; 4], state);
    for word in poly {
        for bit in 0..64 {
            if word >> bit & 1 == 1 {
                for i in 0..4 {
                    acc[i] ^= cur[i];
                }
            }
            step(&mut cur);
        }
    }
    acc
}

/// a · b mod P over GF(2).
fn mul_mod(a: &State, b: &State) -> State {
    let mut r = [0u64; 4];
    for bit in (0..256).rev() {
        // r = r · x mod P
        let carry = r[3] >> 63;
        r = [
            r[0] << 1,
            r[1] << 1 | r[0] >> 63,
            r[2] << 1 | r[1] >> 63,
            r[3] << 1 | r[2] >> 63,
        ];
        if carry == 1 {
            for i in 0..4 {
                r[i] ^= CHARPOLY[i];
            }
        }
        if a[bit / 64] >> (bit % 64) & 1 == 1 {
            for i in 0..4 {
                r[i] ^= b[i];
            }
        }
    }
    r
}

/// x^(2^(128+j)) mod P for j = 0..64.
fn jump_polys() -> &'static [State; 64] {
    static POLYS: OnceLock<[State; 64]> = OnceLock::new();
    POLYS.get_or_init(|| {
        let mut polys = [[0u64; 4]; 64];
        polys[0] = JUMP_2_128;
        for j in 1..64 {
            polys[j] = mul_mod(&polys[j - 1], &polys[j - 1]);
        }
        polys
    })
}

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

/// The start of stream `k` of `base`: `base` jumped `k` times by 2^128.
fn stream_start(base: &State, k: u64) -> State {
    let polys = jump_polys();
    let mut s = *base;
    for (j, poly) in polys.iter().enumerate() {
        if k >> j & 1 == 1 {
            s = apply(poly, s);
        }
    }
    s
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
        Xoshiro256PlusPlus::from_seed(bytes(&stream_start(&self.base, self.first + i)))
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

thread_local! {
    /// The streams of the call (or future) running on this thread.
    static STREAMS: Cell<Option<Streams>> = const { Cell::new(None) };
    /// The index of the element running now, in those streams.
    static INDEX: Cell<u64> = const { Cell::new(0) };
    /// The generator of the element that drew last, with its index.
    static GENERATOR: Cell<Option<(u64, Xoshiro256PlusPlus)>> = const { Cell::new(None) };
    /// The last stream this thread started: (base, stream number, start state).
    static CURSOR: RefCell<Option<(State, u64, State)>> = const { RefCell::new(None) };
}

/// The streams [`rng`] draws from while it lives (a chunk, a future); what
/// it replaced comes back when it ends, so a seeded call nested in an
/// element leaves that element's own stream where it was.
pub(crate) struct StreamScope {
    streams: Option<Streams>,
    index: u64,
    generator: Option<(u64, Xoshiro256PlusPlus)>,
}

impl Drop for StreamScope {
    fn drop(&mut self) {
        STREAMS.set(self.streams);
        INDEX.set(self.index);
        GENERATOR.set(self.generator.take());
    }
}

/// Makes `streams` the ones [`rng`] draws from until the scope ends; each
/// element then says which it is with [`set_element`].
pub(crate) fn stream_scope(streams: Streams) -> StreamScope {
    StreamScope {
        streams: STREAMS.replace(Some(streams)),
        index: INDEX.get(),
        generator: GENERATOR.take(),
    }
}

/// Element `index` of the current scope's streams runs next: one
/// thread-local write, as no generator is made until the element draws.
#[inline(always)]
pub(crate) fn set_element(index: u64) {
    INDEX.set(index);
}

/// Runs `f` with element `index` of `streams` as the stream [`rng`] draws from
/// (nothing changes when `streams` is `None`).
pub(crate) fn with_stream<R>(streams: Option<Streams>, index: u64, f: impl FnOnce() -> R) -> R {
    let Some(streams) = streams else { return f() };
    let _scope = stream_scope(streams);
    set_element(index);
    f()
}

/// The start state of stream `k`, one jump from the thread's last stream
/// when `k` follows it.
fn start_of(base: &State, k: u64) -> State {
    CURSOR.with(|c| {
        let mut cursor = c.borrow_mut();
        let start = match *cursor {
            Some((b, last, s)) if b == *base && last + 1 == k => apply(&JUMP_2_128, s),
            Some((b, last, s)) if b == *base && last == k => s,
            _ => stream_start(base, k),
        };
        *cursor = Some((*base, k, start));
        start
    })
}

/// The random stream of the element (or future) being evaluated.
///
/// Inside a body run with `seed = true` (or `seed = n`), `rng()` draws from
/// that element's own stream: the numbers depend only on the seed and the
/// element's index, never on the plan. It implements `rand_core`'s `Rng`
/// (`TryRng` with no error), so `rand` and `rand_distr` work on it.
///
/// # Panics
/// When called outside a body that has a seed; the message says how to give
/// it one.
///
/// ```
/// use futurize::prelude::*;
/// let draws: Vec<u64> = foreach!(i in 0..4 => rng().next_u64() %dofuture% seed = 7).unwrap();
/// let again: Vec<u64> = foreach!(i in 0..4 => rng().next_u64() %dofuture% seed = 7).unwrap();
/// assert_eq!(draws, again);
/// ```
pub fn rng() -> ElementRng {
    ElementRng { _private: () }
}

/// The handle [`rng`] returns: draws from the current element's stream.
#[derive(Debug)]
pub struct ElementRng {
    _private: (),
}

impl ElementRng {
    fn with<R>(&mut self, f: impl FnOnce(&mut Xoshiro256PlusPlus) -> R) -> R {
        let index = INDEX.get();
        let mut generator = current_generator(index);
        let drawn = f(&mut generator);
        GENERATOR.set(Some((index, generator)));
        drawn
    }
}

/// The generator of element `index`, made at its first draw.
fn current_generator(index: u64) -> Xoshiro256PlusPlus {
    if let Some((i, generator)) = GENERATOR.take()
        && i == index
    {
        return generator;
    }
    let Some(streams) = STREAMS.get() else {
        panic!(
            "futurize::rng() was called outside a body with a seed: add `seed = true` \
             (or `seed = 42` for a fixed seed) to the options of the foreach!, future! \
             or #[futurize] that runs this code"
        );
    };
    let k = streams.first + index;
    Xoshiro256PlusPlus::from_seed(bytes(&start_of(&streams.base, k)))
}

impl TryRng for ElementRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.with(|g| g.try_next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.with(|g| g.try_next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.with(|g| g.try_fill_bytes(dst))
    }
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
