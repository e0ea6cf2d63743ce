//! Jumps of xoshiro256's linear engine: where stream `k` of a base starts.
//!
//! The engine's state update is linear over GF(2)^256, so advancing a state by
//! 2^n steps is the polynomial x^(2^n) mod P(x) (P the engine's
//! characteristic polynomial) applied to it, and the jumped state of an XOR
//! of states is the XOR of their jumped states. Invariant: every function
//! here equals some number of the library's `Xoshiro256PlusPlus::jump()`
//! (jumps by 2^128), exactly; the unit tests compare them.
//!
//! Two ways to jump: [`apply`] any polynomial in 256 steps of the engine
//! (about 240 ns), or [`next_stream`] one jump by 2^128 through a table of
//! the jumped images of every byte value at every byte position (32 lookups,
//! about 20 ns; the table, 256 KiB, is made once per process at the first
//! element that draws).

use std::sync::OnceLock;

/// The generator's state as four words (its `state()` bytes, little-endian).
pub(super) type State = [u64; 4];

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
#[inline(always)]
pub(super) fn step(s: &mut State) {
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
}

fn xor_into(acc: &mut State, x: &State) {
    for i in 0..4 {
        acc[i] ^= x[i];
    }
}

/// Applies a jump polynomial to a state.
fn apply(poly: &State, state: State) -> State {
    let (mut acc, mut cur) = ([0u64; 4], state);
    for word in poly {
        for bit in 0..64 {
            if word >> bit & 1 == 1 {
                xor_into(&mut acc, &cur);
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
            xor_into(&mut r, &CHARPOLY);
        }
        if a[bit / 64] >> (bit % 64) & 1 == 1 {
            xor_into(&mut r, b);
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

/// One entry of the table, aligned so that it never straddles two cache
/// lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Image(State);

/// The jumped images of every byte value at every byte position.
type JumpTable = [[[Image; 256]; 8]; 4];

/// `table[w][b][v]`: the state whose only non-zero byte is `v`, byte `b`
/// (from the low end) of word `w`, jumped by 2^128.
fn jump_table() -> &'static JumpTable {
    static TABLE: OnceLock<Box<JumpTable>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Made on the heap: 256 KiB would crowd a worker thread's stack.
        let mut table: Box<JumpTable> = vec![[[Image([0; 4]); 256]; 8]; 4]
            .into_boxed_slice()
            .try_into()
            .expect("4 words");
        for p in 0..32 {
            let images = &mut table[p / 8][p % 8];
            for bit in 0..8 {
                let mut unit = [0u64; 4];
                unit[p / 8] = 1 << (8 * (p % 8) + bit);
                let image = apply(&JUMP_2_128, unit);
                // Every value with `bit` as its highest bit: the value
                // without it, jumped (made already), plus this image.
                for low in 0..1usize << bit {
                    let mut entry = images[low];
                    xor_into(&mut entry.0, &image);
                    images[1 << bit | low] = entry;
                }
            }
        }
        table
    })
}

/// The start of the stream after the one starting at `start`: `start`
/// jumped once by 2^128.
pub(super) fn next_stream(start: &State) -> State {
    let table = jump_table();
    let mut acc = [0u64; 4];
    for (word, bytes) in start.iter().zip(table) {
        for (b, images) in bytes.iter().enumerate() {
            // A `u8` index into 256 entries: no bounds check.
            let value = (word >> (8 * b)) as u8;
            xor_into(&mut acc, &images[usize::from(value)].0);
        }
    }
    acc
}

/// The start of stream `k` of `base`: `base` jumped `k` times by 2^128, one
/// polynomial per set bit of `k`.
pub(super) fn stream_start(base: &State, k: u64) -> State {
    let polys = jump_polys();
    let mut s = *base;
    for (j, poly) in polys.iter().enumerate() {
        if k >> j & 1 == 1 {
            s = apply(poly, s);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library_jump(s: &State) -> State {
        use rand_core::SeedableRng;
        let mut bytes = [0u8; 32];
        for (i, w) in s.iter().enumerate() {
            bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        let mut g = rand_xoshiro::Xoshiro256PlusPlus::from_seed(bytes);
        g.jump();
        let b = g.state();
        std::array::from_fn(|i| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap()))
    }

    #[test]
    fn the_table_jump_is_the_library_jump() {
        let mut s: State = [1, 2, 3, 4];
        for _ in 0..200 {
            let jumped = next_stream(&s);
            assert_eq!(jumped, library_jump(&s));
            assert_eq!(jumped, apply(&JUMP_2_128, s));
            s = jumped;
        }
        // Every byte position and the extreme byte values.
        for p in 0..32 {
            for v in [1u64, 0x80, 0xff] {
                let mut unit = [0u64; 4];
                unit[p / 8] = v << (8 * (p % 8));
                assert_eq!(next_stream(&unit), library_jump(&unit), "byte {p}, {v}");
            }
        }
    }

    #[test]
    fn successive_table_jumps_reach_stream_k() {
        let base: State = [0x0123_4567, 0x89ab_cdef, 0xfeed_beef, 0xdead_f00d];
        let mut s = base;
        for k in 0..300u64 {
            assert_eq!(s, stream_start(&base, k), "stream {k}");
            s = next_stream(&s);
        }
    }
}
