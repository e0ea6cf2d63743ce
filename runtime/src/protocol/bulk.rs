//! Plain numbers in bulk: slices written as their bytes in one go, and read
//! back with one copy into a typed, aligned `Vec`.
//!
//! serde writes a `Vec<u8>` or a `Vec<f64>` element by element, and reads it
//! back the same way: a 100 MB capture took some 100 million calls on each
//! side. The capture tags of `Vec<T>`, `&[T]` and `&Vec<T>` with `T` a plain
//! number ([`Plain`]) send [`BulkSlice`] instead: serde's `serialize_bytes`
//! of the slice's memory (bincode writes its length and the bytes with one
//! copy), decoded as a [`BulkVec`] with one `memcpy` into a `Vec<T>`.
//!
//! Byte order: the bytes are those of the leader's memory, read as the
//! worker's. Both run the same build (the handshake compares build ids, and a
//! Slurm job or a remote host runs the same executable), hence the same
//! architecture and byte order.
//!
//! Large buffers (at least [`HUGE_PAGES_FROM`]) are allocated with a hint for
//! transparent huge pages: writing 100 MB into fresh 4 KiB pages costs more
//! page faults than copying the bytes, a 2 MiB page takes one fault.

use crate::sync::lock;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod sealed {
    // Unnameable on purpose: only this module may implement `Plain`.
    #[allow(unnameable_types)]
    pub trait Sealed {}
}

/// A number type whose every bit pattern is a value and which has no
/// padding, so that a slice of it is plain bytes and any bytes of the right
/// length are a slice of it. Sealed: implemented for the integer and float
/// types only (not `bool` or `char`, which have invalid bit patterns).
pub trait Plain: sealed::Sealed + Copy + Send + Sync + 'static {
    /// bincode (standard configuration, as the codec uses it) writes a
    /// value of this type as its own little-endian bytes: floats and the
    /// one-byte integers (wider integers are written as varints).
    #[doc(hidden)]
    const BINCODE_WRITES_RAW: bool;
    /// The value as a position on the integers, for counting runs of
    /// consecutive values; `None` for floats.
    #[doc(hidden)]
    fn as_index(self) -> Option<i128>;
    /// The value at position `index` (`as_index` inverted); `None` for
    /// floats and out of range.
    #[doc(hidden)]
    fn from_index(index: i128) -> Option<Self>;
    /// The value `by` positions after this one, wrapping (for integers;
    /// a float is returned unchanged).
    #[doc(hidden)]
    fn after(self, by: u64) -> Self;
}

macro_rules! plain_integers {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {
            const BINCODE_WRITES_RAW: bool = std::mem::size_of::<$t>() == 1;
            fn as_index(self) -> Option<i128> {
                i128::try_from(self).ok()
            }
            fn from_index(index: i128) -> Option<$t> {
                <$t>::try_from(index).ok()
            }
            #[inline]
            fn after(self, by: u64) -> $t {
                self.wrapping_add(by as $t)
            }
        }
    )*};
}

macro_rules! plain_floats {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {
            const BINCODE_WRITES_RAW: bool = true;
            fn as_index(self) -> Option<i128> {
                None
            }
            fn from_index(_: i128) -> Option<$t> {
                None
            }
            fn after(self, _: u64) -> $t {
                self
            }
        }
    )*};
}

plain_integers!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);
plain_floats!(f32, f64);

/// Buffers from this size on ask for transparent huge pages.
pub(crate) const HUGE_PAGES_FROM: usize = 4 << 20;

/// An empty `Vec` with room for `len` values; from [`HUGE_PAGES_FROM`]
/// bytes on, its memory is advised for transparent huge pages.
pub(crate) fn vec_with_capacity<T>(len: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(len);
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    if bytes >= HUGE_PAGES_FROM {
        advise_huge_pages(v.as_ptr().cast(), bytes);
    }
    v
}

/// Buffers from this size on are kept for the next encode or frame once
/// their bytes were sent or decoded ([`reuse`]): glibc serves allocations
/// above 32 MiB with fresh `mmap`ed memory each time, and below that gives
/// the top of its heap back past twice its (adaptive) mapping threshold, so
/// that a chunk's answer of a few hundred KiB also landed in new pages on
/// every call. Faulting in and zeroing new pages costs as much as copying
/// the bytes.
pub(crate) const REUSE_FROM: usize = 256 << 10;

/// How many spare buffers are kept at most.
const SPARES: usize = 2;

/// How long a spare buffer is kept unused.
pub(crate) const KEEP_SPARES_FOR: Duration = Duration::from_secs(2);

/// Buffers of sent captures, with when each was given back.
static SPARE: Mutex<Vec<(Vec<u8>, Instant)>> = Mutex::new(Vec::new());

/// Whether the thread that drops idle spares runs; read and written only
/// under [`SPARE`]'s lock.
static REAPING: AtomicBool = AtomicBool::new(false);

/// An empty buffer for `len` encoded bytes: from [`REUSE_FROM`] on, the
/// smallest spare buffer that holds them, if any, else a new one.
pub(crate) fn encode_buffer(len: usize) -> Vec<u8> {
    if len >= REUSE_FROM {
        let mut spare = lock(&SPARE);
        let best = (spare.iter().enumerate())
            .filter(|(_, (b, _))| b.capacity() >= len)
            .min_by_key(|(_, (b, _))| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let mut buffer = spare.swap_remove(i).0;
            buffer.clear();
            return buffer;
        }
    }
    vec_with_capacity(len)
}

/// Keeps a buffer whose bytes were sent, for the next [`encode_buffer`];
/// a small one is simply dropped, and so is the smallest when more than a
/// few are kept. A thread drops each spare left unused for
/// [`KEEP_SPARES_FOR`], and ends when none is left.
pub(crate) fn reuse(buffer: Vec<u8>) {
    if buffer.capacity() < REUSE_FROM {
        return;
    }
    let mut spare = lock(&SPARE);
    // One reaper at a time, started and ended under the lock: the list is
    // empty for a moment whenever a spare is taken, and starting a thread
    // each time cost a future with 1 MiB of captures a fifth of its time.
    if !REAPING.load(Ordering::Relaxed) {
        let reaper = std::thread::Builder::new()
            .name("futurize-spares".into())
            .spawn(|| {
                while release_idle_spares() > 0 {
                    std::thread::sleep(KEEP_SPARES_FOR / 4);
                }
            });
        if reaper.is_err() {
            return;
        }
        REAPING.store(true, Ordering::Relaxed);
    }
    spare.push((buffer, Instant::now()));
    if spare.len() > SPARES
        && let Some(i) = (0..spare.len()).min_by_key(|&i| spare[i].0.capacity())
    {
        let smallest = spare.swap_remove(i);
        drop(spare);
        drop(smallest);
    }
}

/// Drops the spare buffers not used for [`KEEP_SPARES_FOR`]; how many are
/// left. With none left the reaper ends, and says so under the lock.
fn release_idle_spares() -> usize {
    let (stale, left) = {
        let mut spare = lock(&SPARE);
        let (stale, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *spare)
            .into_iter()
            .partition(|(_, at)| at.elapsed() >= KEEP_SPARES_FOR);
        *spare = kept;
        if spare.is_empty() {
            REAPING.store(false, Ordering::Relaxed);
        }
        (stale, spare.len())
    };
    drop(stale);
    left
}

/// Asks the kernel to back the whole pages inside `start..start + len` with
/// huge pages, where it can; a hint that never fails the caller.
fn advise_huge_pages(start: *const u8, len: usize) {
    const PAGE: usize = 4096;
    let first = (start as usize).next_multiple_of(PAGE);
    let end = (start as usize + len) & !(PAGE - 1);
    if end > first {
        // SAFETY: `first..end` lies inside an allocation this process owns
        // (the caller's buffer). MADV_HUGEPAGE changes only how the kernel
        // backs those pages, never their contents, so no Rust value can see
        // a difference; a failure (no THP support) is ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

/// The bytes of a slice of plain numbers.
pub(crate) fn as_bytes<T: Plain>(values: &[T]) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so every byte of the slice is
    // initialised; the pointer and length cover exactly the slice's memory,
    // which stays borrowed for the returned lifetime, and `u8` has alignment 1.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// A `Vec` of plain numbers made from their bytes with one copy; `None` when
/// the length is not a whole number of values.
pub(crate) fn vec_from_bytes<T: Plain>(bytes: &[u8]) -> Option<Vec<T>> {
    let size = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(size) {
        return None;
    }
    let len = bytes.len() / size;
    let mut values: Vec<T> = vec_with_capacity(len);
    // SAFETY: the allocation holds at least `len` values of `T`, that is
    // `bytes.len()` bytes, and cannot overlap the borrowed `bytes`. `T: Plain`
    // makes any bytes a valid value, so after the copy the first `len`
    // values are initialised and `set_len` is sound.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            values.as_mut_ptr().cast::<u8>(),
            bytes.len(),
        );
        values.set_len(len);
    }
    Some(values)
}

/// A slice of plain numbers as it is sent: its bytes, in one piece.
pub struct BulkSlice<'a, T: Plain>(pub &'a [T]);

impl<T: Plain> Serialize for BulkSlice<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(as_bytes(self.0))
    }
}

/// A `Vec` of plain numbers as it is received from a [`BulkSlice`].
pub struct BulkVec<T: Plain>(pub Vec<T>);

impl<'de, T: Plain> Deserialize<'de> for BulkVec<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_bytes(BytesOf(PhantomData))
            .map(BulkVec)
    }
}

struct BytesOf<T>(PhantomData<fn() -> T>);

impl<T: Plain> Visitor<'_> for BytesOf<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the bytes of values of {} bytes each",
            std::mem::size_of::<T>()
        )
    }

    // The borrowed decoder hands out a slice of the input (no copy before
    // this one); an owned buffer arrives here too, by serde's default.
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<T>, E> {
        vec_from_bytes(bytes).ok_or_else(|| E::invalid_length(bytes.len(), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_with_every_bit_pattern() {
        let floats = [
            f64::NAN,
            -0.0,
            f64::INFINITY,
            f64::from_bits(0x7ff8_dead_beef_0001),
        ];
        let back: Vec<f64> = vec_from_bytes(as_bytes(&floats)).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&floats));
        let wide = [u128::MAX, 1, 0];
        assert_eq!(vec_from_bytes::<u128>(as_bytes(&wide)).unwrap(), wide);
        assert!(vec_from_bytes::<u32>(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_length_that_is_not_whole_values_is_refused() {
        assert!(vec_from_bytes::<f64>(&[0; 12]).is_none());
        assert!(vec_from_bytes::<u16>(&[0; 3]).is_none());
    }

    #[test]
    fn a_decoded_vec_is_aligned_for_its_type() {
        // Bytes at an odd address still give an aligned Vec<f64>.
        let buffer = [0u8; 8 * 5 + 1];
        let v: Vec<f64> = vec_from_bytes(&buffer[1..]).unwrap();
        assert_eq!(v.as_ptr() as usize % std::mem::align_of::<f64>(), 0);
        assert_eq!(v, vec![0.0; 5]);
    }

    #[test]
    fn large_buffers_are_usable_after_the_huge_page_hint() {
        let mut v: Vec<u8> = vec_with_capacity(HUGE_PAGES_FROM * 2 + 5);
        v.resize(HUGE_PAGES_FROM * 2 + 5, 3);
        assert!(v.iter().all(|&b| b == 3));
    }

    #[test]
    fn large_encode_buffers_are_reused_and_idle_ones_dropped() {
        let capacities = || {
            let mut c: Vec<usize> = lock(&SPARE).iter().map(|(b, _)| b.capacity()).collect();
            c.sort();
            c
        };
        let mut a = encode_buffer(REUSE_FROM);
        a.extend_from_slice(&[1, 2, 3]);
        let at = a.as_ptr();
        reuse(a);
        reuse(Vec::with_capacity(1000)); // small: not kept
        assert_eq!(capacities(), [REUSE_FROM]);
        let small = encode_buffer(REUSE_FROM - 1);
        assert_eq!(capacities(), [REUSE_FROM], "not for a smaller one");
        drop(small);
        let b = encode_buffer(REUSE_FROM);
        assert_eq!((b.as_ptr(), b.len()), (at, 0), "the same memory, empty");
        assert!(capacities().is_empty());
        // At most a few kept: the smallest goes.
        reuse(b);
        reuse(Vec::with_capacity(REUSE_FROM + 1));
        reuse(Vec::with_capacity(REUSE_FROM + 2));
        assert_eq!(capacities(), [REUSE_FROM + 1, REUSE_FROM + 2]);
        assert_eq!(
            encode_buffer(REUSE_FROM).capacity(),
            REUSE_FROM + 1,
            "smallest that fits"
        );
        // Unused for long enough: dropped.
        lock(&SPARE)[0].1 -= KEEP_SPARES_FOR;
        release_idle_spares();
        assert!(capacities().is_empty());
        // A buffer taken and given back over and over (a future's captures
        // each time) starts no thread per turn: one reaper runs (the one
        // that just found nothing may still be ending).
        for _ in 0..20 {
            reuse(encode_buffer(REUSE_FROM));
        }
        let reapers = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "futurize-spares")
            })
            .count();
        assert!(reapers <= 2, "{reapers} reaper threads");
    }
}
