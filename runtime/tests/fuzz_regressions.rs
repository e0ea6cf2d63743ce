//! Inputs found by the fuzz targets in `fuzz/` (see fuzz/README.md), kept as
//! tests: the frame decoder and the handshake must answer them with an error,
//! without a panic and without an allocation beyond what the input and the
//! frame limit justify.
//!
//! A counting allocator records the largest single allocation made by the
//! current thread, so each test can check the bound while the others run.

use futurize_runtime::codec;
use futurize_runtime::wire::{FromWorker, PROTOCOL_VERSION, ToWorker, read_message, write_message};
use futurize_runtime::{Error, Plan};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: forwards every call to the system allocator unchanged; it only
// records sizes in a thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's promises for `alloc` (a non-zero-size
        // `layout`) pass on unchanged to `System`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's promises for `alloc_zeroed` (a non-zero-size
        // `layout`) pass on unchanged to `System`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from this allocator, that is from `System`,
        // with `layout`; the caller's promises about `ptr`, `layout` and
        // `new_size` pass on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`,
        // with this `layout`, as the caller promises.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The largest single allocation `f` made on this thread, and its result.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (usize, T) {
    LARGEST.with(|l| l.set(0));
    let value = f();
    (LARGEST.with(Cell::get), value)
}

/// The frame limit the fuzz targets run with.
const LIMIT: u64 = 1 << 20;

/// A frame around `header` (already encoded bytes), as `write_message` lays it out.
fn frame(header: &[u8]) -> Vec<u8> {
    let mut bytes = ((4 + header.len()) as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(header);
    bytes
}

fn assert_protocol_error<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
}

/// Minimal form of the `handshake` finding: a 16-byte `Hello` frame whose
/// `nested_plan` claims 512 MiB (bincode varint `0xfc` + u32 LE). The worker's
/// `read_message` must refuse it without allocating past its 1 MiB limit.
#[test]
fn a_hello_whose_plan_claims_512_mib_allocates_within_the_frame_limit() {
    // Hello (variant 0), version 5, build_id of length 0, nested_plan of 0x2000_0000 bytes.
    let bytes = frame(&[0, PROTOCOL_VERSION as u8, 0, 0xfc, 0, 0, 0, 0x20]);
    assert_eq!(bytes.len(), 16);
    let (largest, r) = largest_allocation(|| read_message::<_, ToWorker>(&mut &bytes[..], LIMIT));
    assert_protocol_error(r);
    assert!(
        largest <= LIMIT as usize,
        "a {}-byte frame made the decoder allocate {largest} bytes at once (limit {LIMIT})",
        bytes.len()
    );
}

/// The leader's side: a `Refused` whose reason claims 512 MiB.
#[test]
fn a_refusal_whose_reason_claims_512_mib_allocates_within_the_frame_limit() {
    let bytes = frame(&[1, 0xfc, 0, 0, 0, 0x20]);
    let (largest, r) = largest_allocation(|| read_message::<_, FromWorker>(&mut &bytes[..], LIMIT));
    assert_protocol_error(r);
    assert!(
        largest <= LIMIT as usize,
        "allocated {largest} bytes at once"
    );
}

/// The `handshake` target's artifact `oom-130af311130607a1f9ed23fe08b7bb1a1cf79345`
/// as found (its first byte is the target's read size: 1 byte per `read`):
/// a 48-byte frame holding a `Hello` with version 5, a 20-byte build id, and a
/// `nested_plan` claiming 0x13fcfcfc = 335,346,940 bytes, which the worker's
/// decoder allocated before finding that the frame ends.
#[test]
fn handshake_artifact_oom_130af311() {
    let input: &[u8] = &[
        0x00, 0x30, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x05, 0x14, 0x00, 0x01, 0x02,
        0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc,
        0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0x13, 0x14, 0xff, 0xff, 0xff, 0x00, 0x69, 0x6d, 0x75,
        0x6c, 0x74, 0x69, 0x70, 0x72, 0x6f, 0x63, 0x65, 0x73, 0x73, 0x65, 0x73, 0x68,
    ];
    let stream = &input[1..];
    let (largest, r) = largest_allocation(|| {
        let mut reader = std::io::BufReader::new(stream);
        read_message::<_, ToWorker>(&mut reader, LIMIT)
    });
    assert_protocol_error(r);
    assert!(
        largest <= LIMIT as usize,
        "allocated {largest} bytes at once"
    );
    let (largest, _) =
        largest_allocation(|| read_message::<_, FromWorker>(&mut &stream[..], LIMIT));
    assert!(
        largest <= LIMIT as usize,
        "allocated {largest} bytes at once"
    );
}

/// The `wire_decode` target's artifact `oom-6fb8c585678fbfc0d6df0cd74837ffbeebb5d9dd`:
/// 27 bytes that `codec::decode` reads as an empty `Vec<f64>` and a `String`
/// claiming 1,026,293,819 bytes, which it allocated before finding 21.
#[test]
fn wire_decode_artifact_oom_6fb8c585() {
    let input: &[u8] = &[
        0x00, 0xfc, 0x3b, 0x00, 0x2c, 0x3d, 0x00, 0xb0, 0xb0, 0xb0, 0x2c, 0x3d, 0x00, 0xb0, 0xb0,
        0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0xb0, 0x00, 0x04,
    ];
    let (largest, r) = largest_allocation(|| {
        codec::decode::<(Vec<f64>, String, Option<u64>)>(input, "fuzz input")
    });
    assert_protocol_error(r);
    assert!(
        largest <= 1 << 20,
        "{} bytes made codec::decode allocate {largest} bytes at once",
        input.len()
    );
}

/// The bound must not refuse what is really there: a frame with a 900 KiB
/// plan text (inside the 1 MiB limit) still decodes.
#[test]
fn a_large_but_present_string_still_decodes() {
    let plan = "x".repeat(900 << 10);
    let hello = ToWorker::Hello {
        version: PROTOCOL_VERSION,
        build_id: vec![7; 20],
        nested_plan: plan.clone(),
    };
    let mut bytes = Vec::new();
    write_message(&mut bytes, &hello, b"", LIMIT).unwrap();
    let (message, payload) = read_message::<_, ToWorker>(&mut &bytes[..], LIMIT)
        .unwrap()
        .unwrap();
    assert_eq!((message, payload), (hello, Vec::new()));
    // The plan text is not a plan, and says so.
    assert!(matches!(
        Plan::parse_from(&plan, "fuzz"),
        Err(Error::Plan { .. })
    ));
}
