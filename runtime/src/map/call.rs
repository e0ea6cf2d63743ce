//! One `foreach!` call as the backends see it: a [`MapCall`] that runs its
//! chunks in this process (on the calling thread and on pool threads, which
//! borrow the caller's captures and elements directly) or hands them out as
//! bytes to worker processes (`remote`).
//!
//! Invariant: every chunk ends up in `finished` exactly once, with its
//! element range; under `errors = "stop"` chunks after the lowest failure
//! found so far are not started.

use super::chunks::{ChunkPlanner, Ordering};
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
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a chunk costs to hand out here: a lock and a small allocation.
const TARGET_CHUNK_TIME: Duration = Duration::from_micros(100);

/// Chunks larger than this gain nothing here and fall out of the cache.
const MAX_CHUNK: usize = 16 << 10;

/// Where chunks take their elements from.
enum Source<I: Iterator> {
    /// Chunks come in element order from an iterator of known length: pull
    /// them from it directly.
    Pulled(I),
    /// Chunks come in element order: move them out of the collected elements.
    InOrder(std::vec::IntoIter<I::Item>),
    /// Chunks come in another order: take them by index.
    ByIndex(Vec<Option<I::Item>>),
}

struct Queue<I: Iterator> {
    planner: ChunkPlanner,
    source: Source<I>,
}

impl<I: Iterator> Queue<I> {
    fn next_chunk(&mut self) -> Option<(Range<usize>, Vec<I::Item>)> {
        let range = self.planner.next_chunk()?;
        let elements = match &mut self.source {
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
struct Here<I: Iterator> {
    queue: Mutex<Queue<I>>,
    streams: Option<Streams>,
}

/// One `foreach!` call: its body, captures, elements and options, and what
/// its chunks produced.
pub(super) struct Call<'a, 'v, C, E, R, F, G, V: ?Sized, I: Iterator> {
    pub(super) body: &'a F,
    pub(super) combine: G,
    pub(super) entry: ChunkFn,
    pub(super) vars: &'v V,
    pub(super) options: &'a MapOptions,
    /// The elements until the call is planned (here) or sent (as bytes).
    pub(super) items: Mutex<Option<I>>,
    pub(super) finished: Mutex<Finished<R>>,
    /// The call's bar, started once the number of elements is known.
    pub(super) bar: OnceLock<Option<Arc<Progress>>>,
    here: OnceLock<Here<I>>,
    /// The lowest failed element index so far: elements after it are not run
    /// (under `stop`), elements before it still are, as they may fail earlier.
    failed_at: AtomicUsize,
    _types: std::marker::PhantomData<fn() -> (C, E)>,
}

impl<'a, 'v, C, E, R, F, G, V: ?Sized, I: Iterator> Call<'a, 'v, C, E, R, F, G, V, I> {
    pub(super) fn new(
        body: &'a F,
        combine: G,
        entry: ChunkFn,
        vars: &'v V,
        items: I,
        options: &'a MapOptions,
    ) -> Self {
        Call {
            body,
            combine,
            entry,
            vars,
            options,
            items: Mutex::new(Some(items)),
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
}

impl<'a, 'v: 'a, C, E, R, F, G, V, I> MapCall for Call<'a, 'v, C, E, R, F, G, V, I>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    I: Iterator<Item = E::Item<'v>> + Send,
    E::Item<'v>: Serialize + Send,
    V: Serialize + Sync + ?Sized,
    R: Serialize + DeserializeOwned + Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    fn plan_here(&self, workers: usize) -> usize {
        let items = lock(&self.items)
            .take()
            .expect("a call is planned or sent once");
        let (lower, upper) = items.size_hint();
        let (total, source) = match self.options.ordering {
            Ordering::Forward if upper == Some(lower) => (lower, Source::Pulled(items)),
            Ordering::Forward => {
                let all: Vec<E::Item<'v>> = items.collect();
                (all.len(), Source::InOrder(all.into_iter()))
            }
            _ => {
                let all: Vec<Option<E::Item<'v>>> = items.map(Some).collect();
                (all.len(), Source::ByIndex(all))
            }
        };
        let workers = workers.min(total).max(1);
        self.start_bar(total);
        let planner = ChunkPlanner::new(
            total,
            workers,
            self.options.sizing,
            self.options.ordering,
            TARGET_CHUNK_TIME,
        )
        .with_max_chunk(MAX_CHUNK);
        let here = Here {
            queue: Mutex::new(Queue { planner, source }),
            streams: self.options.seed.map(|s| s.streams(total as u64)),
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
        let bar = self.bar.get().and_then(Option::as_ref);
        let stop = options.errors == ErrorPolicy::Stop;
        let failed_at = &self.failed_at;
        let mut done = Vec::new();
        loop {
            let next = lock(&here.queue).next_chunk();
            let Some((range, elements)) = next else { break };
            if stop && range.start > failed_at.load(AtomicOrdering::Relaxed) {
                continue;
            }
            let started = Instant::now();
            let watched = bar.is_some() || options.timeout.is_some();
            let mut watch = ElementWatch {
                bar: bar.map(|b| &**b),
                limit: options.timeout.as_ref(),
                started: None,
            };
            // Without a bar or a time limit nothing happens around elements:
            // a separate instance keeps the per-element loop as tight as before.
            macro_rules! run_with {
                ($watch:expr) => {
                    run_chunk(
                        elements.into_iter(),
                        {
                            let mut index = range.start as u64;
                            move |e| {
                                index += 1;
                                rng::with_stream(streams, index - 1, || {
                                    body(C::view(vars), E::pass(e))
                                })
                            }
                        },
                        combine,
                        stop,
                        |p| stop && range.start + p > failed_at.load(AtomicOrdering::Relaxed),
                        $watch,
                    )
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
        let items: Vec<E::Item<'v>> = lock(&self.items)
            .take()
            .expect("a call is planned or sent once")
            .collect();
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
