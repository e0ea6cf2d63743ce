//! Runs the real handshake code of both sides on arbitrary bytes, through
//! the runtime's hidden entry point `__fuzz_handshake`: the worker reads the
//! leader's first frame through a `BufReader` (`worker::handshake::read_hello`:
//! version and build checks, the refusal text, `Plan::parse_from` of the plan
//! passed on) and then every further frame as its serve loop reads them; the
//! leader reads a worker's answer (`backend::processes::link::check_answer`).
//! Nothing may panic, hang or allocate past the limit.
//!
//! The first byte of the input sets how many bytes each `read` returns (its
//! low seven bits: 1 to 128), so short reads of the length prefix and the
//! body are covered as a pipe delivers them; its high bit puts a hello of
//! this build before the rest on the worker's side, so that the frames after
//! the handshake are reached (no input can forge the build id).
#![no_main]

use futurize_runtime::__private::__fuzz_handshake;
use libfuzzer_sys::fuzz_target;
use std::io::Read;

/// The frame limit of the run (the real default is 1 GiB; a small one keeps
/// the fuzzer's memory bounded and makes the "too large" branch reachable).
const LIMIT: u64 = 1 << 20;

/// A reader that hands out at most `step` bytes per call, like a pipe.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first & 0x7f) + 1;
    let greeted = first & 0x80 != 0;
    let mut worker_reads = Trickle { data: rest, step };
    let mut leader_reads = Trickle { data: rest, step };
    let (worker, leader) = __fuzz_handshake(&mut worker_reads, &mut leader_reads, greeted, LIMIT);
    // Each side always has something to say about what it read.
    assert!(!worker.is_empty() && !leader.is_empty());
});
