//! Chunks run in worker processes.
//!
//! The captures are encoded once per call; the pool sends them to a worker
//! only the first time that worker runs a chunk of this call (it caches
//! them). The calling thread hands out chunks as workers free up, looks at
//! finished chunks between hand-outs (to size the next chunk and to notice a
//! failure under `errors = "stop"`), and at the end stops what still runs
//! after a failure, or waits for it.

use super::chunks::ChunkPlanner;
use super::{Finished, MapOptions};
use crate::backend::{Backend, CallCaptures, ChunkTask, ResultSlot, Submitted};
use crate::each::{ChunkFn, ChunkOutput};
use crate::{Error, codec};
use serde::{Serialize, de::DeserializeOwned};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A chunk should take about 50 round trips' worth of time.
const TARGET_CHUNK_TIME: Duration = Duration::from_millis(2);

/// Larger chunks save little of a round trip and cost cache on both sides.
const MAX_CHUNK: usize = 64 << 10;

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

struct InFlight {
    range: Range<usize>,
    slot: Arc<ResultSlot>,
    started: Instant,
}

pub(super) fn run<T: Serialize, V: Serialize + ?Sized, R: DeserializeOwned>(
    backend: &Arc<dyn Backend>,
    workers: usize,
    entry: ChunkFn,
    vars: &V,
    items: &[T],
    stop: bool,
    options: &MapOptions,
) -> Result<Finished<R>, Error> {
    let what = match &options.label {
        Some(l) => format!("the captures of foreach! \"{l}\""),
        None => "the captures of a foreach!".to_string(),
    };
    let call = Arc::new(CallCaptures {
        id: NEXT_CALL.fetch_add(1, Ordering::Relaxed),
        bytes: codec::encode(vars, &what)?,
    });
    let streams = options.seed.map(|s| s.streams(items.len() as u64));
    let mut planner = ChunkPlanner::new(
        items.len(),
        workers,
        options.sizing,
        options.ordering,
        TARGET_CHUNK_TIME,
    )
    .with_max_chunk(MAX_CHUNK)
    .with_even_final_round();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut finished: Finished<R> = Vec::new();
    // The lowest failed element index so far. Under `stop`, chunks after it
    // are not started (or are stopped); chunks before it still run, as they
    // may hold an earlier failure.
    let mut failed_at: Option<usize> = None;
    while let Some(range) = planner.next_chunk() {
        failed_at = min_failure(
            failed_at,
            harvest(&mut in_flight, &mut finished, &mut planner),
        );
        if stop && failed_at.is_some_and(|f| range.start > f) {
            continue;
        }
        let elements = codec::encode(&items[range.clone()], "the elements of a chunk")?;
        let task = ChunkTask {
            entry,
            call: call.clone(),
            elements,
            stop_at_failure: stop,
            label: options.label.clone(),
            streams: streams.map(|s| s.skip(range.start as u64)),
        };
        let started = Instant::now();
        match backend.submit_chunk(task) {
            Submitted::Ready(result) => {
                let output = decode_output(result);
                failed_at = min_failure(failed_at, failure_index(&range, &output));
                finished.push((range, output));
            }
            Submitted::Running(slot) => in_flight.push(InFlight {
                range,
                slot,
                started,
            }),
        }
    }
    loop {
        if stop && let Some(f) = failed_at {
            for chunk in in_flight.iter().filter(|c| c.range.start > f) {
                chunk.slot.cancel();
            }
        }
        if in_flight.is_empty() {
            break;
        }
        // Wait for the earliest chunk; it may lower `failed_at`.
        let earliest = (0..in_flight.len())
            .min_by_key(|&i| in_flight[i].range.start)
            .expect("not empty");
        in_flight[earliest].slot.resolve_wait();
        failed_at = min_failure(
            failed_at,
            harvest(&mut in_flight, &mut finished, &mut planner),
        );
    }
    // Chunks stopped on purpose are not failures of their own.
    finished.retain(|(_, r)| !matches!(r, Err(Error::Cancelled { .. })));
    Ok(finished)
}

fn min_failure(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn decode_output<R: DeserializeOwned>(
    result: Result<Vec<u8>, Error>,
) -> Result<ChunkOutput<R>, Error> {
    result.and_then(|b| codec::decode::<ChunkOutput<R>>(&b, "the values of a chunk"))
}

/// Where a finished chunk failed first: its first failed element, or its
/// first element when the whole chunk was lost.
fn failure_index<R>(range: &Range<usize>, output: &Result<ChunkOutput<R>, Error>) -> Option<usize> {
    match output {
        Ok(out) => out.first_failure(range.start),
        Err(Error::Cancelled { .. }) => None,
        Err(_) => Some(range.start),
    }
}

/// Moves finished chunks from `in_flight` to `finished`; returns the lowest
/// failed element index among them.
fn harvest<R: DeserializeOwned>(
    in_flight: &mut Vec<InFlight>,
    finished: &mut Finished<R>,
    planner: &mut ChunkPlanner,
) -> Option<usize> {
    let mut failed_at = None;
    let mut i = 0;
    while i < in_flight.len() {
        if in_flight[i].slot.is_filled() {
            let f = in_flight.swap_remove(i);
            let cancelled = f.slot.is_cancelled();
            let result = f.slot.take();
            let output = if cancelled {
                Err(Error::Cancelled { label: None })
            } else {
                planner.record(f.range.len(), f.started.elapsed());
                decode_output(result)
            };
            failed_at = min_failure(failed_at, failure_index(&f.range, &output));
            finished.push((f.range, output));
        } else {
            i += 1;
        }
    }
    failed_at
}
