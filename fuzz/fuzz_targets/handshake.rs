//! Plays both sides of the handshake on arbitrary bytes, as `worker::serve_on`
//! and `backend::processes::link::handshake` do it: the worker reads the
//! leader's first frame through a `BufReader`, takes a `Hello`, formats a
//! refusal for a version or build that differs, parses `nested_plan` with
//! `Plan::parse_from` and then reads further frames; the leader reads a
//! `Ready` or `Refused`. Nothing may panic, hang or allocate past the limit.
//!
//! The first byte of the input sets how many bytes each `read` returns
//! (1 to 256), so short reads of the length prefix and the body are covered
//! as a pipe delivers them.
#![no_main]

use futurize_runtime::Plan;
use futurize_runtime::wire::{FromWorker, PROTOCOL_VERSION, ToWorker, read_message};
use libfuzzer_sys::fuzz_target;
use std::io::{BufReader, Read};

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the worker does with the plan text the leader passed on, and what
/// the leader sends next time: the text form must parse back to the plan.
fn check_plan(text: &str) {
    let Ok(plan) = Plan::parse_from(text, "fuzz") else {
        return;
    };
    let shown = plan.to_string();
    let again = Plan::parse_from(&shown, "fuzz").unwrap_or_else(|e| {
        panic!("{text:?} parsed to {plan:?}, whose text {shown:?} does not parse: {e}")
    });
    assert_eq!(again, plan, "{text:?} -> {shown:?} parsed differently");
    for level in plan.levels() {
        let _ = level.workers();
    }
    let _ = plan.first();
    let _ = plan.nested().to_string();
}

fn worker_side(data: &[u8], step: usize) {
    let mut input = BufReader::new(Trickle { data, step });
    match read_message::<_, ToWorker>(&mut input, LIMIT) {
        Ok(Some((
            ToWorker::Hello {
                version,
                build_id,
                nested_plan,
            },
            _payload,
        ))) => {
            if version != PROTOCOL_VERSION {
                let _ = format!(
                    "the leader speaks protocol version {version}, this worker {PROTOCOL_VERSION}"
                );
            } else {
                let _ = format!("the leader's executable (build {})", hex(&build_id));
            }
            check_plan(&nested_plan);
            // The serve loop: the frames after the handshake.
            while let Ok(Some((message, _))) = read_message::<_, ToWorker>(&mut input, LIMIT) {
                let _ = format!("{message:?}");
            }
        }
        Ok(Some((other, _))) => {
            let _ = format!("expected a handshake, got {other:?}");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn leader_side(data: &[u8], step: usize) {
    let mut output = Trickle { data, step };
    match read_message::<_, FromWorker>(&mut output, LIMIT) {
        Ok(Some((
            FromWorker::Ready {
                version,
                build_id,
                pid,
            },
            _,
        ))) => {
            if version != PROTOCOL_VERSION {
                let _ = format!(
                    "worker {pid} answered with protocol {version} and build {}",
                    hex(&build_id)
                );
            }
        }
        Ok(Some((FromWorker::Refused { reason }, _))) => {
            let _ = format!("the worker refused the leader: {reason}");
        }
        other => {
            let _ = format!("the worker did not complete the handshake: {other:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first) + 1;
    worker_side(rest, step);
    leader_side(rest, step);
});
