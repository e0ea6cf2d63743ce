//! One `foreach!` call as the backends see it: a [`MapCall`] that runs its
//! chunks in this process (on the calling thread and on pool threads, which
//! borrow the caller's captures and elements directly) or hands them out as
//! bytes to worker processes (`remote`).
//!
//! Invariant: every chunk ends up in `finished` exactly once, with its
//! element range; under `errors = "stop"` chunks after the lowest failure
//! found so far are not started.

use super::chunks::{ChunkPlanner, Ordering};
use super::elements::Elements;
use super::in_place::{Slots, run_chunk_in_place};
use super::{ErrorPolicy, Finished, MapOptions, remote};
use crate::Error;
use crate::backend::{ChunkWorkers, MapCall};
use crate::body::TimeLimit;
use crate::body::capture::Capture;
use crate::body::chunk::{ChunkFn, Combine, Failure, Unwatched, Watch, run_chunk};
use crate::body::foreach_capture::ViewOf;
use crate::progress::{self, Progress};
use crate::rng::Streams;
use crate::sync::lock;
use crate::{relay, rng};
use serde::{Serialize, de::DeserializeOwned};
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

/// The call's chunks as planned for workers in this process.
struct Here<It: Iterator, R> {
    queue: Mutex<Queue<It>>,
    streams: Option<Streams>,
    /// The output, when values are written in place.
    slots: Option<Slots<R>>,
}

/// One `foreach!` call: its body, captures, elements and options, and what
/// its chunks produced.
pub(super) struct Call<'a, 'v, C, E, R, F, G, V: ?Sized, S: Elements> {
    pub(super) body: &'a F,
    pub(super) combine: G,
    pub(super) entry: ChunkFn,
    pub(super) vars: &'v V,
    pub(super) options: &'a MapOptions,
    /// The elements.
    pub(super) elements: S,
    pub(super) finished: Mutex<Finished<R>>,
    /// The call's bar, started once the number of elements is known.
    pub(super) bar: OnceLock<Option<Arc<Progress>>>,
    here: OnceLock<Here<S::Iter, R>>,
    /// The lowest failed element index so far: chunks after it are not run
    /// (under `stop`), chunks before it still are, as they may fail earlier.
    failed_at: AtomicUsize,
    _types: std::marker::PhantomData<fn() -> (C, E)>,
}

impl<'a, 'v, C, E, R, F, G, V: ?Sized, S: Elements> Call<'a, 'v, C, E, R, F, G, V, S> {
    pub(super) fn new(
        body: &'a F,
        combine: G,
        entry: ChunkFn,
        vars: &'v V,
        elements: S,
        options: &'a MapOptions,
    ) -> Self {
        Call {
            body,
            combine,
            entry,
            vars,
            options,
            elements,
            finished: Mutex::new(Vec::new()),
            bar: OnceLock::new(),
            here: OnceLock::new(),
            failed_at: AtomicUsize::new(usize::MAX),
            _types: std::marker::PhantomData,
        }
    }

    /// Starts the bar for `total` elements, when the call asked for one.
    fn start_bar(&self, total: usize) -> Option<&Arc<Progress>> {
        self.bar
            .get_or_init(|| {
                if self.options.progress {
                    Progress::start(total, self.options.label.as_deref())
                } else {
                    None
                }
            })
            .as_ref()
    }

    /// Keeps what an element took for this call site's next call.
    pub(super) fn remember_cost(&self) {
        if let Some(here) = self.here.get()
            && let Some(t) = lock(&here.queue).planner.estimate()
        {
            remember_cost(self.entry, t);
        }
    }

    /// All values in element order, when they were written in place and
    /// every element ran and succeeded. Otherwise the values written in
    /// place move into their chunks' outputs (so that `finished` holds every
    /// value) and this gives `None`.
    pub(super) fn values_in_place(&mut self) -> Option<Vec<R>> {
        let slots = self.here.take()?.slots?;
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

impl<'a, 'v: 'a, C, E, R, F, G, V, S> MapCall for Call<'a, 'v, C, E, R, F, G, V, S>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    S: Elements<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Serialize + Sync + ?Sized,
    R: Serialize + DeserializeOwned + Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    fn plan_here(&self, workers: usize) -> usize {
        let (total, source) = if S::INDEXED {
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
                    let all: Vec<E::Item<'v>> = items.collect();
                    (all.len(), Source::InOrder(all.into_iter()))
                }
                _ => {
                    let all: Vec<Option<E::Item<'v>>> = items.map(Some).collect();
                    (all.len(), Source::ByIndex(all))
                }
            }
        };
        let cost = remembered_cost(self.entry);
        let alone = cost.is_some_and(|t| t * total as f64 <= ALONE_BELOW.as_secs_f64());
        let workers = if alone { 1 } else { workers.min(total).max(1) };
        self.start_bar(total);
        let planner = ChunkPlanner::new(
            total,
            workers,
            self.options.sizing,
            self.options.ordering,
            TARGET_CHUNK_TIME,
        )
        .with_max_chunk(MAX_CHUNK)
        .with_estimate(cost);
        let here = Here {
            queue: Mutex::new(Queue { planner, source }),
            streams: self.options.seed.map(|s| s.streams(total as u64)),
            slots: (S::INDEXED && !G::ACTIVE).then(|| Slots::new(total)),
        };
        if self.here.set(here).is_err() {
            unreachable!("a call is planned once");
        }
        workers
    }

    fn work_here(&self) {
        let Some(here) = self.here.get() else { return };
        let options = self.options;
        let (body, vars, combine, streams) = (self.body, self.vars, self.combine, here.streams);
        let source = &self.elements;
        let bar = self.bar.get().and_then(Option::as_ref);
        let stop = options.errors == ErrorPolicy::Stop;
        let failed_at = &self.failed_at;
        let watched = bar.is_some() || options.timeout.is_some();
        // Elements say which stream is theirs; the streams are set once.
        let seeded = streams.is_some();
        let _streams = streams.map(rng::stream_scope);
        let mut done = Vec::new();
        loop {
            let next = lock(&here.queue).next_chunk();
            let Some((range, elements)) = next else { break };
            if stop && range.start > failed_at.load(AtomicOrdering::Relaxed) {
                continue;
            }
            let started = Instant::now();
            let mut watch = ElementWatch {
                bar: bar.map(|b| &**b),
                limit: options.timeout.as_ref(),
                started: None,
            };
            // By value, so that the loop holds what it needs in registers.
            let run_element = move |i: usize, e: E::Item<'v>| {
                if seeded {
                    rng::set_element(i as u64);
                }
                body(C::view(vars), E::pass(e))
            };
            // Without a bar or a time limit nothing happens around elements:
            // a separate instance keeps the per-element loop as tight as before.
            macro_rules! run_with {
                ($watch:expr) => {
                    if let Some(slots) = &here.slots {
                        run_chunk_in_place(range.clone(), source, run_element, slots, stop, $watch)
                    } else if S::INDEXED {
                        run_chunk(
                            // SAFETY: chunks lie inside `0..len()`, the total planned.
                            range.clone().map(|i| (i, unsafe { source.get(i) })),
                            |(i, e)| run_element(i, e),
                            combine,
                            stop,
                            |_| false,
                            $watch,
                        )
                    } else {
                        run_chunk(
                            (range.start..).zip(elements),
                            |(i, e)| run_element(i, e),
                            combine,
                            stop,
                            |_| false,
                            $watch,
                        )
                    }
                };
            }
            let (mut output, printed) = relay::capture(options.stdout, || {
                progress::with_bar(bar, || {
                    if watched {
                        run_with!(&mut watch)
                    } else {
                        run_with!(&mut Unwatched)
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
                if let Some(l) = &options.label {
                    args.push(("label", l.clone()));
                }
                crate::trace::span("chunk", crate::trace::this_thread(), started, args);
            }
            done.push((range, Ok(output)));
        }
        lock(&self.finished).append(&mut done);
    }

    fn send_chunks(&self, workers: &dyn ChunkWorkers) -> Result<(), Error> {
        let items: Vec<E::Item<'v>> = if S::INDEXED {
            (0..self.elements.len())
                // SAFETY: `i < len()`.
                .map(|i| unsafe { self.elements.get(i) })
                .collect()
        } else {
            self.elements
                .take_iter()
                .expect("a call is planned or sent once")
                .collect()
        };
        let bar = self.start_bar(items.len()).cloned();
        let finished = remote::run(
            workers,
            self.entry,
            self.vars,
            &items,
            self.options,
            bar.as_ref(),
        )?;
        *lock(&self.finished) = finished;
        Ok(())
    }
}

/// Around each element here: the bar moves as it returns, and an element
/// that ran past its time limit fails (it could not be stopped earlier: a
/// thread cannot be interrupted).
struct ElementWatch<'a> {
    bar: Option<&'a Progress>,
    limit: Option<&'a TimeLimit>,
    started: Option<Instant>,
}

impl Watch for ElementWatch<'_> {
    fn started(&mut self, _: usize) {
        if self.limit.is_some() {
            self.started = Some(Instant::now());
        }
    }

    fn finished(&mut self, _: usize) -> Option<Failure> {
        if let Some(bar) = self.bar {
            bar.elements(1);
        }
        match (self.limit, self.started.take()) {
            (Some(limit), Some(t)) if t.elapsed() > limit.limit => Some(Failure::TimedOut {
                after: limit.text.clone(),
            }),
            _ => None,
        }
    }
}
