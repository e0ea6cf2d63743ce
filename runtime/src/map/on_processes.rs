//! Chunks run in worker processes.
//!
//! The captures are encoded once per call; the pool sends them to a worker
//! only the first time that worker runs a chunk of this call (it caches
//! them). The calling thread hands out chunks as workers free up, looks at
//! finished chunks between hand-outs (to size the next chunk and to notice a
//! failure under `errors = "stop"`), and at the end stops what still runs
//! after a failure, or waits for it.

use super::chunks::ChunkPlanner;
use super::in_process::has_failure;
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
    let mut planner = ChunkPlanner::new(
        items.len(),
        workers,
        options.sizing,
        options.ordering,
        TARGET_CHUNK_TIME,
    );
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut finished: Finished<R> = Vec::new();
    let mut failed = false;
    loop {
        failed |= harvest(&mut in_flight, &mut finished, &mut planner, false);
        if stop && failed {
            break;
        }
        let Some(range) = planner.next_chunk() else {
            break;
        };
        let elements = codec::encode(&items[range.clone()], "the elements of a chunk")?;
        let task = ChunkTask {
            entry,
            call: call.clone(),
            elements,
            stop_at_failure: stop,
            label: options.label.clone(),
        };
        let started = Instant::now();
        match backend.submit_chunk(task) {
            Submitted::Ready(result) => {
                let output = result
                    .and_then(|b| codec::decode::<ChunkOutput<R>>(&b, "the values of a chunk"));
                failed |= output.as_ref().map_or(true, has_failure);
                finished.push((range, output));
            }
            Submitted::Running(slot) => in_flight.push(InFlight {
                range,
                slot,
                started,
            }),
        }
    }
    if stop && failed {
        for f in &in_flight {
            f.slot.cancel();
        }
    }
    harvest(&mut in_flight, &mut finished, &mut planner, true);
    // Chunks stopped on purpose are not failures of their own.
    finished.retain(|(_, r)| !matches!(r, Err(Error::Cancelled { .. })));
    Ok(finished)
}

/// Moves finished chunks from `in_flight` to `finished` (all of them, waiting,
/// when `wait`); returns whether any failed.
fn harvest<R: DeserializeOwned>(
    in_flight: &mut Vec<InFlight>,
    finished: &mut Finished<R>,
    planner: &mut ChunkPlanner,
    wait: bool,
) -> bool {
    let mut failed = false;
    let mut i = 0;
    while i < in_flight.len() {
        if wait || in_flight[i].slot.is_filled() {
            let f = in_flight.swap_remove(i);
            let cancelled = f.slot.is_cancelled();
            let result = f.slot.take();
            if !cancelled {
                planner.record(f.range.len(), f.started.elapsed());
            }
            let output = if cancelled {
                Err(Error::Cancelled { label: None })
            } else {
                result.and_then(|b| codec::decode::<ChunkOutput<R>>(&b, "the values of a chunk"))
            };
            failed |= output.as_ref().map_or(true, has_failure);
            finished.push((f.range, output));
        } else {
            i += 1;
        }
    }
    failed
}
