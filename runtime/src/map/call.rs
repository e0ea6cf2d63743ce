//! One `foreach!` call: its chunks run in this process (on the calling
//! thread and on threads a backend lends it, which borrow the caller's
//! captures and elements directly) or are handed out as bytes to workers
//! elsewhere (`remote`).
//!
//! Invariant: every chunk ends up in `finished` exactly once, with its
//! element range; under `errors = "stop"` chunks after the lowest failure
//! found so far are not started.

use super::cached::Cached;
use super::chunks::{ChunkPlanner, Ordering};
use super::elements::Elements;
use super::in_place::{Slots, run_chunk_in_place};
pub(super) use super::site::{Body, ChunkHere, Site};
use super::watched::{ElementWatch, run_watched};
use super::{Finished, MapOptions, remote};
use crate::Error;
use crate::backend::{Backend, ChunkWorkers};
use crate::body::chunk::{ChunkFn, ChunkOutput, Combine, Watch, run_chunk};
use crate::progress::{self, Progress};
use crate::rng::Streams;
use crate::sync::lock;
use crate::{relay, rng};
use serde::Serialize;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a chunk costs to hand out here: a lock and a small allocation.
const TARGET_CHUNK_TIME: Duration = Duration::from_micros(100);

/// Chunks larger than this gain nothing here and fall out of the cache.
const MAX_CHUNK: usize = 16 << 10;

/// Below this expected duration a call runs on the calling thread alone:
/// waking a pool thread and waiting for it costs about as much.
const ALONE_BELOW: Duration = Duration::from_micros(50);

/// What an element of each call site took last time (seconds, as `f32`
/// bits), under a tag of the site's chunk entry address. Two sites with the
/// same slot only share a guess, which sizes chunks and decides whether to
/// wake pool threads, never what runs.
static SITE_COSTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

fn site_slot(entry: ChunkFn) -> (&'static AtomicU64, u64) {
    let address = entry as usize as u64;
    let mixed = address.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (&SITE_COSTS[(mixed >> 56) as usize], (mixed >> 32) | 1)
}

/// What an element of this call site took last time, if known.
fn remembered_cost(entry: ChunkFn) -> Option<f64> {
    let (slot, tag) = site_slot(entry);
    let v = slot.load(AtomicOrdering::Relaxed);
    (v >> 32 == tag).then(|| f64::from(f32::from_bits(v as u32)))
}

fn remember_cost(entry: ChunkFn, per_element: f64) {
    let (slot, tag) = site_slot(entry);
    slot.store(
        (tag << 32) | u64::from((per_element as f32).to_bits()),
        AtomicOrdering::Relaxed,
    );
}

/// Where chunks take their elements from.
enum Source<It: Iterator> {
    /// Indexed elements: chunks are ranges of indices, and whoever runs a
    /// chunk takes its elements from the call's source directly.
    Indexed,
    /// Chunks come in element order from an iterator of known length: pull
    /// them from it directly.
    Pulled(It),
    /// Chunks come in element order: move them out of the collected elements.
    InOrder(std::vec::IntoIter<It::Item>),
    /// Chunks come in another order: take them by index.
    ByIndex(Vec<Option<It::Item>>),
}

struct Queue<It: Iterator> {
    planner: ChunkPlanner,
    source: Source<It>,
}

impl<It: Iterator> Queue<It> {
    /// The next chunk's range, and its elements unless they are indexed.
    fn next_chunk(&mut self) -> Option<(Range<usize>, Vec<It::Item>)> {
        let range = self.planner.next_chunk()?;
        let elements = match &mut self.source {
            Source::Indexed => Vec::new(),
            Source::Pulled(rest) => rest.by_ref().take(range.len()).collect(),
            Source::InOrder(rest) => rest.by_ref().take(range.len()).collect(),
            Source::ByIndex(items) => items[range.clone()]
                .iter_mut()
                .map(|e| e.take().expect("each element is handed out once"))
                .collect(),
        };
        Some((range, elements))
    }
}

/// The call's chunks as planned for threads of this process.
struct LocalChunks<It: Iterator, R> {
    queue: Mutex<Queue<It>>,
    streams: Option<Streams>,
    /// The output, when values are written in place.
    slots: Option<Slots<R>>,
}

/// Runs `chunk` through `run_element`: values in place when the call writes
/// them there, else collected or combined. The branches are on constants of
/// the element source and the combine function, so a call site compiles
/// only the one it takes.
pub(super) fn run_with<S: Elements, R, G: Combine<R>, W: Watch>(
    chunk: ChunkHere<'_, S, R>,
    run_element: impl Fn(usize, S::Item) -> R + Copy,
    combine: G,
    watch: &mut W,
) -> ChunkOutput<R> {
    let ChunkHere {
        range,
        source,
        elements,
        slots,
        stop,
        ..
    } = chunk;
    if S::INDEXED {
        match slots {
            // Values without combine go in place, unless the call is cached
            // (its values are collected per chunk, to be kept).
            Some(slots) if !G::ACTIVE => {
                run_chunk_in_place(range, source, run_element, slots, stop, watch)
            }
            _ => run_chunk(
                // SAFETY: chunks lie inside `0..len()`, the total planned.
                range.clone().map(|i| (i, unsafe { source.get(i) })),
                |(i, e)| run_element(i, e),
                combine,
                stop,
                |_| false,
                watch,
            ),
        }
    } else {
        run_chunk(
            (range.start..).zip(elements.by_ref().take(range.len())),
            |(i, e)| run_element(i, e),
            combine,
            stop,
            |_| false,
            watch,
        )
    }
}

/// One `foreach!` call as the backends see it: its elements, options and
/// what its chunks produced, and its [`Site`] for what depends on the body.
pub(super) struct Call<'a, S: Elements, R> {
    pub(super) site: &'a dyn Site<S, R>,
    pub(super) entry: ChunkFn,
    pub(super) options: &'a MapOptions,
    /// The elements.
    pub(super) elements: S,
    /// Values go into place (indexed elements, no combine).
    pub(super) writes_in_place: bool,
    pub(super) finished: Mutex<Finished<R>>,
    /// The call's bar, started once the number of elements is known.
    pub(super) bar: OnceLock<Option<Arc<Progress>>>,
    local: OnceLock<LocalChunks<S::Iter, R>>,
    /// The lowest failed element index so far: chunks after it are not run
    /// (under `stop`), chunks before it still are, as they may fail earlier.
    failed_at: AtomicUsize,
    /// The call's random streams, taken once its size is known.
    pub(super) streams: OnceLock<Option<Streams>>,
    /// Its cache, when caching is on (`cache = true`, `FUTURIZE_CACHE`).
    pub(super) cached: Option<Cached<S::Item>>,
}

impl<'a, S: Elements, R> Call<'a, S, R> {
    pub(super) fn new(
        site: &'a dyn Site<S, R>,
        combines: bool,
        entry: ChunkFn,
        elements: S,
        options: &'a MapOptions,
    ) -> Self {
        Call {
            site,
            entry,
            options,
            writes_in_place: S::INDEXED && !combines,
            elements,
            finished: Mutex::new(Vec::new()),
            bar: OnceLock::new(),
            local: OnceLock::new(),
            failed_at: AtomicUsize::new(usize::MAX),
            streams: OnceLock::new(),
            cached: None,
        }
    }

    /// The call's random streams for its `total` elements (taken once: a
    /// call with `seed = true` takes the session's next streams).
    pub(super) fn streams(&self, total: usize) -> Option<Streams> {
        *self
            .streams
            .get_or_init(|| self.options.seed.map(|s| s.streams(total as u64)))
    }

    /// Starts the bar for `total` elements, when the call asked for one.
    fn start_bar(&self, total: usize) -> Option<&Arc<Progress>> {
        self.bar
            .get_or_init(|| {
                if self.options.settings.progress {
                    let bar = Progress::start(total, self.options.settings.label.as_deref());
                    if let (Some(bar), Some(cached)) = (&bar, &self.cached) {
                        bar.elements(cached.hits);
                    }
                    bar
                } else {
                    None
                }
            })
            .as_ref()
    }

    /// Keeps what an element took for this call site's next call.
    pub(super) fn remember_cost(&self) {
        if let Some(local) = self.local.get()
            && let Some(t) = lock(&local.queue).planner.mean()
        {
            remember_cost(self.entry, t);
        }
    }

    /// All values in element order, when they were written in place and
    /// every element ran and succeeded. Otherwise the values written in
    /// place move into their chunks' outputs (so that `finished` holds every
    /// value) and this gives `None`.
    pub(super) fn values_in_place(&mut self) -> Option<Vec<R>> {
        let slots = self.local.take()?.slots?;
        let finished = self.finished.get_mut().unwrap_or_else(|p| p.into_inner());
        let complete = finished
            .iter()
            .map(|(range, r)| match r {
                Ok(out) if out.failures.is_empty() => range.len(),
                _ => 0,
            })
            .sum::<usize>()
            == slots.len();
        if complete {
            // SAFETY: the chunks cover every slot (their ranges are disjoint
            // and their lengths add up to all), and a chunk without failures
            // wrote each of its slots and moved none out.
            return Some(unsafe { slots.into_full() });
        }
        for (range, result) in finished.iter_mut() {
            if let Ok(out) = result
                && out.failures.is_empty()
            {
                // SAFETY: this chunk ran all its elements without failing,
                // so it wrote every slot of its range; its range is moved
                // out once, here.
                out.values = unsafe { slots.take(range.clone(), &[]) };
            }
        }
        None
    }
}

impl<S, R> Call<'_, S, R>
where
    S: Elements,
    S::Item: Send,
    R: Send,
{
    /// Runs every chunk on `backend`, as it says it runs chunks; returns
    /// when all have ended (their outputs are in `finished`).
    pub(super) fn run_on(&self, backend: &dyn Backend) -> Result<(), Error> {
        match backend.chunk_workers() {
            ChunkWorkers::Threads(threads) => {
                threads.lend(&mut |n| self.plan_here(n), &|| self.work_here());
                Ok(())
            }
            ChunkWorkers::Remote {
                workers,
                all_at_once,
                chunk_per_worker,
            } => self.send_chunks(&remote::Workers {
                backend,
                count: workers,
                all_at_once,
                chunk_per_worker,
            }),
        }
    }

    /// Cuts the call into chunks for up to `workers` threads of this
    /// process; called once, before any [`Call::work_here`]. Returns how
    /// many threads have something to do (fewer when there are fewer
    /// elements).
    pub(super) fn plan_here(&self, workers: usize) -> usize {
        let collected = self.cached.as_ref().and_then(|c| lock(&c.collected).take());
        let (total, source) = if let Some(items) = collected {
            (
                items.len(),
                Source::ByIndex(items.into_iter().map(Some).collect()),
            )
        } else if S::INDEXED {
            (self.elements.len(), Source::Indexed)
        } else {
            let items = self
                .elements
                .take_iter()
                .expect("a call is planned or sent once");
            let (lower, upper) = items.size_hint();
            match self.options.ordering {
                Ordering::Forward if upper == Some(lower) => (lower, Source::Pulled(items)),
                Ordering::Forward => {
                    let all: Vec<S::Item> = items.collect();
                    (all.len(), Source::InOrder(all.into_iter()))
                }
                _ => {
                    let all: Vec<Option<S::Item>> = items.map(Some).collect();
                    (all.len(), Source::ByIndex(all))
                }
            }
        };
        // Only the elements the cache does not hold are planned.
        let runs = self.cached.as_ref().map(|c| &c.runs[..]);
        let planned = runs.map_or(total, |r| r.iter().map(ExactSizeIterator::len).sum());
        let cost = remembered_cost(self.entry);
        let alone = cost.is_some_and(|t| t * planned as f64 <= ALONE_BELOW.as_secs_f64());
        let workers = if alone {
            1
        } else {
            workers.min(planned).max(1)
        };
        self.start_bar(total);
        let mut planner = ChunkPlanner::new(
            planned,
            workers,
            self.options.sizing,
            self.options.ordering,
            TARGET_CHUNK_TIME,
        )
        .with_max_chunk(MAX_CHUNK)
        .with_estimate(cost);
        if let Some(runs) = runs {
            planner = planner.over(runs);
        }
        let local = LocalChunks {
            queue: Mutex::new(Queue { planner, source }),
            streams: self.streams(total),
            slots: self.writes_in_place.then(|| Slots::new(total)),
        };
        if self.local.set(local).is_err() {
            unreachable!("a call is planned once");
        }
        workers
    }

    /// Runs chunks in the calling thread until none is left (or the call
    /// stops at a failure). Several threads may do so at once.
    pub(super) fn work_here(&self) {
        let Some(here) = self.local.get() else { return };
        let options = self.options;
        let site = self.site;
        let bar = self.bar.get().and_then(Option::as_ref);
        let stop = options.settings.stops_at_failure();
        let failed_at = &self.failed_at;
        let watched = bar.is_some() || options.settings.timeout.is_some();
        // Elements say which stream is theirs; the streams are set once.
        let seeded = here.streams.is_some();
        let _streams = here.streams.map(rng::stream_scope);
        let mut done = Vec::new();
        loop {
            let next = lock(&here.queue).next_chunk();
            let Some((range, elements)) = next else { break };
            if stop && range.start > failed_at.load(AtomicOrdering::Relaxed) {
                continue;
            }
            let started = Instant::now();
            let mut watch = ElementWatch::new(bar.map(|b| &**b), options.settings.timeout.as_ref());
            let mut elements = elements.into_iter();
            let chunk = ChunkHere {
                range: range.clone(),
                source: &self.elements,
                elements: &mut elements,
                slots: here.slots.as_ref(),
                stop,
                seeded,
            };
            let (mut output, printed) = relay::capture(options.settings.stdout, || {
                progress::with_bar(bar, || {
                    if watched {
                        run_watched(site, chunk, &mut watch)
                    } else {
                        site.run(chunk)
                    }
                })
            });
            output.output = printed;
            let elapsed = started.elapsed();
            if let Some(index) = output.first_failure(range.start) {
                failed_at.fetch_min(index, AtomicOrdering::Relaxed);
            }
            lock(&here.queue).planner.record(range.len(), elapsed);
            if crate::trace::on() {
                let mut args = vec![(
                    "elements",
                    format!("{}..={}", range.start, range.end.saturating_sub(1)),
                )];
                if let Some(l) = &options.settings.label {
                    args.push(("label", l.clone()));
                }
                crate::trace::span("chunk", crate::trace::this_thread(), started, args);
            }
            self.keep(&range, &output);
            done.push((range, Ok(output)));
        }
        lock(&self.finished).append(&mut done);
    }

    /// Hands the call's chunks to workers elsewhere, as bytes, and returns
    /// when every chunk has ended.
    fn send_chunks(&self, workers: &remote::Workers<'_>) -> Result<(), Error> {
        let collected = self.cached.as_ref().and_then(|c| lock(&c.collected).take());
        let items = if let Some(items) = collected {
            Outgoing::Collected(items)
        } else if S::INDEXED {
            // Each chunk's elements are taken when it is sent.
            Outgoing::ByIndex(ByIndex(&self.elements))
        } else {
            Outgoing::Collected(
                (self.elements.take_iter())
                    .expect("a call is planned or sent once")
                    .collect(),
            )
        };
        let len = match &items {
            Outgoing::Collected(all) => all.len(),
            Outgoing::ByIndex(ByIndex(source)) => source.len(),
        };
        let bar = self.start_bar(len).cloned();
        let keep = |range: &Range<usize>, output: &ChunkOutput<R>| self.keep(range, output);
        let how = remote::How {
            options: self.options,
            bar: bar.as_ref(),
            streams: self.streams(len),
            runs: self.cached.as_ref().map(|c| &c.runs[..]),
            keep: &keep,
            durable: self.cached.as_ref().map(|c| c.cache.durable_key()),
            estimate: remembered_cost(self.entry),
            learned: &|t| remember_cost(self.entry, t),
        };
        let mut finished = self.site.send(workers, self.entry, items, how)?;
        lock(&self.finished).append(&mut finished);
        Ok(())
    }
}

/// A call's elements on their way to workers elsewhere: collected, or
/// taken by index chunk by chunk.
pub(super) enum Outgoing<'s, S: Elements> {
    /// Pulled from iterators (or left by the cache) beforehand.
    Collected(Vec<S::Item>),
    /// Taken from the source as each chunk is sent.
    ByIndex(ByIndex<'s, S>),
}

/// Indexed elements as a call's chunks take them: a chunk of a range's
/// elements as its bounds, any other chunk's elements taken by index when
/// it is sent (nothing collected up front).
pub(super) struct ByIndex<'s, S>(&'s S);

impl<S> remote::ChunkSource for ByIndex<'_, S>
where
    S: Elements,
    S::Item: Serialize,
{
    fn len(&self) -> usize {
        self.0.len()
    }

    fn encode(&self, range: &Range<usize>) -> Result<Vec<u8>, Error> {
        if let Some(first) = self.0.first_of_run(range.start) {
            return Ok(crate::protocol::forms::run_of_elements(first, range.len()));
        }
        let items: Vec<S::Item> = (range.clone())
            // SAFETY: the range lies within `len()` (chunks are planned so).
            .map(|i| unsafe { self.0.get(i) })
            .collect();
        crate::protocol::forms::encode_elements(&items, "the elements of a chunk")
    }
}
