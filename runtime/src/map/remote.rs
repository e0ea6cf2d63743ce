//! Chunks handed out, as bytes, to workers elsewhere (worker processes, on
//! this machine or others, and Slurm jobs).
//!
//! The captures are encoded once per call; a worker process is sent them
//! only the first time it runs a chunk of this call (it keeps them). Each
//! chunk is one [`Work`] given to the backend, with the call's settings. The
//! calling thread hands out chunks as workers free up, looks at finished
//! chunks between hand-outs (to size the next chunk and to notice a failure
//! under `errors = "stop"`), and at the end stops what still runs after a
//! failure, or waits for it.

use super::chunks::{ChunkPlanner, Sizing};
use super::outcome::{Ended, chunk_outcome};
use super::{Finished, MapOptions};
use crate::Error;
use crate::backend::{
    Backend, CallCaptures, Chunk, ChunkProgress, Entry, ResultSlot, Resumed, Submitted, Work,
};
use crate::body::chunk::{ChunkFn, ChunkOutput};
use crate::progress::Progress;
use crate::protocol::codec;
use crate::rng::Streams;
use crate::settings::Settings;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A chunk should take about 50 round trips' worth of time.
const TARGET_CHUNK_TIME: Duration = Duration::from_millis(2);

/// Larger chunks save little of a round trip and cost cache on both sides;
/// and with several chunks per worker, one chunk's answer travels and is
/// decoded while the next one runs (1e5 trivial elements on two workers:
/// 0.79-0.92 ms with chunks of at most 16 Ki elements, 1.11-1.14 ms with
/// 64 Ki, in one run).
const MAX_CHUNK: usize = 16 << 10;

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// The workers a backend offers a call whose chunks travel as bytes.
pub(crate) struct Workers<'a> {
    /// Where each chunk is submitted.
    pub(crate) backend: &'a dyn Backend,
    /// How many chunks can run at once.
    pub(crate) count: usize,
    /// They take the call's chunks all at once (a Slurm job array).
    pub(crate) all_at_once: bool,
    /// One chunk per worker unless the call fixed their size (chunks all
    /// known up front, or each starting a worker of its own).
    pub(crate) chunk_per_worker: bool,
}

pub(super) struct InFlight {
    pub(super) range: Range<usize>,
    pub(super) slot: Arc<ResultSlot>,
    pub(super) started: Instant,
    /// How many times this chunk was tried before (`retries`).
    pub(super) attempt: u32,
    pub(super) progress: Option<Arc<ChunkProgress>>,
}

/// Chunks to run again before new ones: lost with a worker (`retries`), or
/// the rest of a chunk whose element ran out of time.
pub(super) type Again = VecDeque<(Range<usize>, u32)>;

/// A call's elements as its chunks take them: how many there are, and a
/// chunk's elements in the form they travel in.
pub(crate) trait ChunkSource {
    /// How many elements there are.
    fn len(&self) -> usize;
    /// The elements `range`, as bytes.
    fn encode(&self, range: &Range<usize>) -> Result<Vec<u8>, Error>;
}

/// Elements collected beforehand.
impl<T: Serialize> ChunkSource for Vec<T> {
    fn len(&self) -> usize {
        self.len()
    }
    fn encode(&self, range: &Range<usize>) -> Result<Vec<u8>, Error> {
        crate::protocol::forms::encode_elements(&self[range.clone()], "the elements of a chunk")
    }
}

/// One call's chunks on their way out: how to make each chunk's [`Work`].
struct Outgoing<'a> {
    entry: ChunkFn,
    call: Arc<CallCaptures>,
    items: &'a dyn ChunkSource,
    settings: Settings,
    bar: Option<&'a Arc<Progress>>,
}

impl Outgoing<'_> {
    /// The work of the chunk of elements `range`.
    fn work(&self, range: &Range<usize>) -> Result<Work, Error> {
        let payload = self.items.encode(range)?;
        let progress = self.bar.map(|bar| {
            Arc::new(ChunkProgress {
                bar: bar.clone(),
                reported: AtomicU64::new(0),
            })
        });
        Ok(Work {
            entry: Entry::Chunk(Chunk {
                entry: self.entry,
                call: self.call.clone(),
                elements: range.clone(),
                progress,
            }),
            payload,
            settings: self.settings.clone(),
        })
    }
}

/// How a call's chunks run: its options, its bar, its random streams, and
/// for a cached call which elements run and where finished chunks are kept.
pub(crate) struct How<'a, R> {
    pub(crate) options: &'a MapOptions,
    pub(crate) bar: Option<&'a Arc<Progress>>,
    pub(crate) streams: Option<Streams>,
    /// Only these element ranges run (the others' values are cached).
    pub(crate) runs: Option<&'a [Range<usize>]>,
    /// Called with each chunk that finished with values.
    pub(crate) keep: &'a dyn Fn(&Range<usize>, &ChunkOutput<R>),
    /// For a cached call, its durable key (`CallCaptures::durable`).
    pub(crate) durable: Option<u128>,
    /// What an element of this call site took last time, if known: chunks
    /// are sized from it at once instead of from a few small ones first.
    pub(crate) estimate: Option<f64>,
    /// Called with what an element took this time, for the next call.
    pub(crate) learned: &'a dyn Fn(f64),
}

/// Runs every element of `items` on `workers`, a chunk at a time (only the
/// elements of `how.runs`, when given).
pub(super) fn run<V: Serialize + ?Sized, R: DeserializeOwned>(
    workers: &Workers<'_>,
    entry: ChunkFn,
    vars: &V,
    items: &dyn ChunkSource,
    how: How<'_, R>,
) -> Result<Finished<R>, Error> {
    let (options, bar) = (how.options, how.bar);
    let what = match &options.settings.label {
        Some(l) => format!("the captures of foreach! \"{l}\""),
        None => "the captures of a foreach!".to_string(),
    };
    let call = Arc::new(CallCaptures {
        id: NEXT_CALL.fetch_add(1, Ordering::Relaxed),
        bytes: codec::encode(vars, &what)?,
        durable: how.durable,
    });
    workers.backend.prepare_call(&call);
    // A cached call's chunks from an earlier run that are answered or still
    // running there are waited for, not run again.
    let resumed = match how.runs {
        Some(runs) => resumable(workers.backend.resume(&call), runs),
        None => Vec::new(),
    };
    let runs: Option<Vec<Range<usize>>> = how
        .runs
        .map(|runs| without(runs, resumed.iter().map(|(r, _)| r)));
    let out = Outgoing {
        entry,
        call,
        items,
        settings: Settings {
            streams: how.streams,
            ..options.settings.clone()
        },
        bar,
    };
    // Chunks all known up front, or that each start a process, are one per
    // worker unless the call says.
    let sizing = match options.sizing {
        Sizing::Adaptive if workers.chunk_per_worker => Sizing::PerWorker(1.0),
        other => other,
    };
    let planned = runs
        .as_ref()
        .map_or(items.len(), |r| r.iter().map(ExactSizeIterator::len).sum());
    let mut planner = ChunkPlanner::new(
        planned,
        workers.count,
        sizing,
        options.ordering,
        TARGET_CHUNK_TIME,
    )
    .with_max_chunk(MAX_CHUNK)
    .with_even_final_round()
    .with_estimate(how.estimate);
    if let Some(runs) = &runs {
        planner = planner.over(runs);
    }
    let mut in_flight = if workers.all_at_once && planned > 0 {
        submit_all(workers.backend, &out, &mut planner)?
    } else {
        Vec::new()
    };
    let started = Instant::now();
    in_flight.extend(resumed.into_iter().map(|(range, slot)| InFlight {
        range,
        slot,
        started,
        attempt: 0,
        progress: None,
    }));
    let mut finished = drive(workers.backend, &out, &mut planner, &mut in_flight, &how)?;
    if let Some(t) = planner.mean() {
        (how.learned)(t);
    }
    // Chunks stopped on purpose are not failures of their own.
    finished.retain(|(_, r)| !matches!(r, Err(Error::Cancelled { .. })));
    Ok(finished)
}

/// The resumed chunks that lie wholly among the elements still to run (the
/// others' values are cached already), without overlaps.
fn resumable(resumed: Vec<Resumed>, runs: &[Range<usize>]) -> Vec<Resumed> {
    let mut taken: Vec<Resumed> = Vec::new();
    for (range, slot) in resumed {
        let inside = runs
            .iter()
            .any(|r| r.start <= range.start && range.end <= r.end);
        let overlaps = taken
            .iter()
            .any(|(t, _)| t.start < range.end && range.start < t.end);
        if inside && !overlaps && !range.is_empty() {
            taken.push((range, slot));
        }
    }
    taken
}

/// `runs` without the element ranges `taken` (each inside one run).
fn without<'r>(
    runs: &[Range<usize>],
    taken: impl Iterator<Item = &'r Range<usize>>,
) -> Vec<Range<usize>> {
    let mut taken: Vec<&Range<usize>> = taken.collect();
    taken.sort_by_key(|r| r.start);
    let mut left = Vec::new();
    for run in runs {
        let mut at = run.start;
        for t in taken
            .iter()
            .filter(|t| run.start <= t.start && t.end <= run.end)
        {
            if at < t.start {
                left.push(at..t.start);
            }
            at = t.end;
        }
        if at < run.end {
            left.push(at..run.end);
        }
    }
    left
}

/// Submits every chunk of the call at once (workers that take them so).
fn submit_all(
    backend: &dyn Backend,
    out: &Outgoing<'_>,
    planner: &mut ChunkPlanner,
) -> Result<Vec<InFlight>, Error> {
    let ranges: Vec<Range<usize>> = std::iter::from_fn(|| planner.next_chunk()).collect();
    let works = ranges
        .iter()
        .map(|range| out.work(range))
        .collect::<Result<Vec<Work>, Error>>()?;
    let started = Instant::now();
    let bars: Vec<Option<Arc<ChunkProgress>>> =
        works.iter().map(|w| w.progress().cloned()).collect();
    let submitted = backend.submit_all(works);
    Ok(ranges
        .into_iter()
        .zip(bars)
        .zip(submitted)
        .map(|((range, progress), submitted)| InFlight {
            range,
            slot: slot_of(submitted),
            started,
            attempt: 0,
            progress,
        })
        .collect())
}

/// Hands out chunks as workers free up and takes finished ones in, until
/// every chunk has ended; under `errors = "stop"`, stops what runs after a
/// failure.
fn drive<R: DeserializeOwned>(
    backend: &dyn Backend,
    out: &Outgoing<'_>,
    planner: &mut ChunkPlanner,
    in_flight: &mut Vec<InFlight>,
    how: &How<'_, R>,
) -> Result<Finished<R>, Error> {
    let options = how.options;
    // A backend that runs failed work again itself (Slurm) has used the
    // retries already when a chunk comes back lost.
    let retries = if backend.retries_itself() {
        0
    } else {
        options.settings.retries
    };
    let stop = options.settings.stops_at_failure();
    let mut finished: Finished<R> = Vec::new();
    let mut again: Again = VecDeque::new();
    // The lowest failed element index so far. Under `stop`, chunks after it
    // are not started (or are stopped); chunks before it still run, as they
    // may hold an earlier failure.
    let mut failed_at: Option<usize> = None;
    loop {
        let ended = take_finished(in_flight, &mut finished, planner, &mut again, how, retries);
        failed_at = min_failure(failed_at, ended);
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
                return Ok(finished);
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
        in_flight.push(submit_one(backend, out, &range, attempt)?);
    }
}

/// Submits the chunk of elements `range` (blocking while every worker is
/// busy).
fn submit_one(
    backend: &dyn Backend,
    out: &Outgoing<'_>,
    range: &Range<usize>,
    attempt: u32,
) -> Result<InFlight, Error> {
    let work = out.work(range)?;
    let started = Instant::now();
    let (elements, progress) = (range.clone(), work.progress().cloned());
    let slot = slot_of(backend.submit(work));
    if crate::trace::on() {
        let mut args = vec![(
            "elements",
            format!("{}..={}", range.start, range.end.saturating_sub(1)),
        )];
        args.extend(out.settings.label.iter().map(|l| ("label", l.clone())));
        crate::trace::span("chunk queued", crate::trace::Lane::Leader, started, args);
    }
    Ok(InFlight {
        range: elements,
        slot,
        started,
        attempt,
        progress,
    })
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
fn take_finished<R: DeserializeOwned>(
    in_flight: &mut Vec<InFlight>,
    finished: &mut Finished<R>,
    planner: &mut ChunkPlanner,
    again: &mut Again,
    how: &How<'_, R>,
    retries: u32,
) -> Option<usize> {
    let mut failed_at = None;
    let mut i = 0;
    while i < in_flight.len() {
        if !in_flight[i].slot.is_filled() {
            i += 1;
            continue;
        }
        let f = in_flight.swap_remove(i);
        let (range, output) = match chunk_outcome(f, planner, again, retries) {
            Ended::Output(range, output) => (range, output),
            Ended::Again => continue,
            Ended::TimedOut(t, e) => {
                failed_at = min_failure(failed_at, Some(t));
                finished.push((t..t + 1, Err(e)));
                continue;
            }
        };
        failed_at = min_failure(failed_at, failure_index(&range, &output));
        if let Ok(out) = &output {
            (how.keep)(&range, out);
        }
        finished.push((range, output));
    }
    failed_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_chunks_inside_the_runs_are_taken_out_of_them() {
        let slot = || ResultSlot::new();
        let runs = [0..10, 20..30];
        let resumed = vec![
            (2..4, slot()),
            (8..12, slot()),
            (20..30, slot()),
            (3..5, slot()),
        ];
        let taken = resumable(resumed, &runs);
        let ranges: Vec<_> = taken.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(
            ranges,
            vec![2..4, 20..30],
            "across a hit or overlapping: run again"
        );
        assert_eq!(without(&runs, ranges.iter()), vec![0..2, 4..10]);
    }
}
