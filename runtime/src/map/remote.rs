//! Chunks handed out, as bytes, to worker processes.
//!
//! The captures are encoded once per call; the pool sends them to a worker
//! only the first time that worker runs a chunk of this call (it caches
//! them). The calling thread hands out chunks as workers free up, looks at
//! finished chunks between hand-outs (to size the next chunk and to notice a
//! failure under `errors = "stop"`), and at the end stops what still runs
//! after a failure, or waits for it.

use super::chunks::{ChunkPlanner, Sizing};
use super::{ErrorPolicy, Finished, MapOptions};
use crate::Error;
use crate::backend::{CallCaptures, ChunkProgress, ChunkTask, ChunkWorkers, ResultSlot, Submitted};
use crate::body::chunk::{ChunkFn, ChunkOutput};
use crate::progress::Progress;
use crate::protocol::codec;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::VecDeque;
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
    /// How many times this chunk was tried before (`retries`).
    attempt: u32,
    progress: Option<Arc<ChunkProgress>>,
}

/// Chunks to run again before new ones: lost with a worker (`retries`), or
/// the rest of a chunk whose element ran out of time.
type Again = VecDeque<(Range<usize>, u32)>;

/// Runs every element of `items` on `workers`, a chunk at a time.
pub(super) fn run<T: Serialize, V: Serialize + ?Sized, R: DeserializeOwned>(
    workers: &dyn ChunkWorkers,
    entry: ChunkFn,
    vars: &V,
    items: &[T],
    options: &MapOptions,
    bar: Option<&Arc<Progress>>,
) -> Result<Finished<R>, Error> {
    let stop = options.errors == ErrorPolicy::Stop;
    let what = match &options.label {
        Some(l) => format!("the captures of foreach! \"{l}\""),
        None => "the captures of a foreach!".to_string(),
    };
    let call = Arc::new(CallCaptures {
        id: NEXT_CALL.fetch_add(1, Ordering::Relaxed),
        bytes: codec::encode(vars, &what)?,
    });
    let streams = options.seed.map(|s| s.streams(items.len() as u64));
    let at_once = workers.takes_chunks_at_once();
    // Chunks all known up front are one per worker unless the call says.
    let sizing = match options.sizing {
        Sizing::Adaptive if at_once => Sizing::PerWorker(1.0),
        other => other,
    };
    let mut planner = ChunkPlanner::new(
        items.len(),
        workers.workers(),
        sizing,
        options.ordering,
        TARGET_CHUNK_TIME,
    )
    .with_max_chunk(MAX_CHUNK)
    .with_even_final_round();
    let task_for =
        |range: &Range<usize>| -> Result<(ChunkTask, Option<Arc<ChunkProgress>>), Error> {
            let elements = codec::encode(&items[range.clone()], "the elements of a chunk")?;
            let progress = bar.map(|bar| {
                Arc::new(ChunkProgress {
                    bar: bar.clone(),
                    reported: AtomicU64::new(0),
                })
            });
            let task = ChunkTask {
                entry,
                call: call.clone(),
                elements,
                stop_at_failure: stop,
                label: options.label.clone(),
                streams: streams.map(|s| s.skip(range.start as u64)),
                first: range.start,
                len: range.len(),
                capture_output: options.stdout,
                timeout: options.timeout.clone(),
                resources: options.resources.clone().unwrap_or_default(),
                progress: progress.clone(),
            };
            Ok((task, progress))
        };
    let mut in_flight: Vec<InFlight> = Vec::new();
    if at_once {
        let ranges: Vec<Range<usize>> = std::iter::from_fn(|| planner.next_chunk()).collect();
        let mut tasks = Vec::with_capacity(ranges.len());
        let mut bars = Vec::with_capacity(ranges.len());
        for range in &ranges {
            let (task, progress) = task_for(range)?;
            tasks.push(task);
            bars.push(progress);
        }
        let started = Instant::now();
        let submitted = workers.submit_chunks(tasks);
        for ((range, progress), submitted) in ranges.into_iter().zip(bars).zip(submitted) {
            in_flight.push(InFlight {
                range,
                slot: slot_of(submitted),
                started,
                attempt: 0,
                progress,
            });
        }
    }
    let mut finished: Finished<R> = Vec::new();
    let mut again: Again = VecDeque::new();
    // The lowest failed element index so far. Under `stop`, chunks after it
    // are not started (or are stopped); chunks before it still run, as they
    // may hold an earlier failure.
    let mut failed_at: Option<usize> = None;
    loop {
        failed_at = min_failure(
            failed_at,
            harvest(
                &mut in_flight,
                &mut finished,
                &mut planner,
                &mut again,
                options,
            ),
        );
        let next = again
            .pop_front()
            .or_else(|| planner.next_chunk().map(|r| (r, 0)));
        let Some((range, attempt)) = next else {
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
            continue;
        };
        if stop && failed_at.is_some_and(|f| range.start > f) {
            continue;
        }
        let (task, progress) = task_for(&range)?;
        let started = Instant::now();
        let slot = slot_of(workers.submit_chunk(task));
        if crate::trace::on() {
            crate::trace::span(
                "chunk queued",
                crate::trace::Lane::Leader,
                started,
                vec![(
                    "elements",
                    format!("{}..={}", range.start, range.end.saturating_sub(1)),
                )],
            );
        }
        in_flight.push(InFlight {
            range,
            slot,
            started,
            attempt,
            progress,
        });
    }
    // Chunks stopped on purpose are not failures of their own.
    finished.retain(|(_, r)| !matches!(r, Err(Error::Cancelled { .. })));
    Ok(finished)
}

/// The slot a submitted chunk's result appears in.
fn slot_of(submitted: Submitted) -> Arc<ResultSlot> {
    match submitted {
        Submitted::Ready(result, output) => {
            let slot = ResultSlot::new();
            slot.set_output(output);
            slot.fill(result);
            slot
        }
        Submitted::Running(slot) => slot,
    }
}

fn min_failure(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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

/// Moves finished chunks from `in_flight` to `finished` (or back to `again`,
/// to run again); returns the lowest failed element index among them.
fn harvest<R: DeserializeOwned>(
    in_flight: &mut Vec<InFlight>,
    finished: &mut Finished<R>,
    planner: &mut ChunkPlanner,
    again: &mut Again,
    options: &MapOptions,
) -> Option<usize> {
    let mut failed_at = None;
    let mut i = 0;
    while i < in_flight.len() {
        if !in_flight[i].slot.is_filled() {
            i += 1;
            continue;
        }
        let f = in_flight.swap_remove(i);
        let reported = f
            .progress
            .as_ref()
            .map_or(0, |p| p.reported.load(Ordering::Relaxed));
        let cancelled = f.slot.is_cancelled();
        let result = f.slot.take();
        let range = f.range;
        let output: Result<ChunkOutput<R>, Error> = match result {
            _ if cancelled => Err(Error::Cancelled { label: None }),
            Err(Error::WorkerDied { .. }) if f.attempt < options.retries => {
                // Run it again, on whichever worker is free next (a new
                // process: this one is gone), with the same streams.
                if let Some(p) = &f.progress {
                    p.bar.lost(reported);
                }
                again.push_back((range, f.attempt + 1));
                continue;
            }
            Err(Error::WorkerDied {
                worker,
                cause,
                label,
                ..
            }) => Err(Error::WorkerDied {
                worker,
                cause,
                label,
                index: Some(range.start),
                elements: Some(range.clone()),
            }),
            Err(e @ Error::Timeout { index: Some(t), .. }) if range.contains(&t) => {
                // The worker is gone with the values of the elements before
                // `t`: run the rest of the chunk again, without `t`.
                if let Some(p) = &f.progress {
                    p.bar.lost(reported);
                    p.bar.elements(1);
                }
                for rest in [range.start..t, t + 1..range.end] {
                    if !rest.is_empty() {
                        again.push_back((rest, f.attempt));
                    }
                }
                failed_at = min_failure(failed_at, Some(t));
                finished.push((t..t + 1, Err(e)));
                continue;
            }
            Err(Error::TooLarge { size, limit, .. }) => Err(Error::TooLarge {
                what: format!(
                    "the values and the printed output of elements {}..={}",
                    range.start,
                    range.end - 1
                ),
                size,
                limit,
            }),
            Err(e) => Err(e),
            Ok(bytes) => {
                planner.record(range.len(), f.started.elapsed());
                codec::decode::<ChunkOutput<R>>(&bytes, "the values of a chunk").map(|mut out| {
                    out.output = f.slot.take_output();
                    out
                })
            }
        };
        if let Some(p) = &f.progress
            && output.is_ok()
        {
            p.bar
                .elements((range.len() as u64).saturating_sub(reported));
        }
        failed_at = min_failure(failed_at, failure_index(&range, &output));
        finished.push((range, output));
    }
    failed_at
}
