//! Chunks run in this process: in the calling thread (one worker) or on
//! scoped threads that borrow the caller's captures and elements.

use super::chunks::{ChunkPlanner, Ordering};
use super::{ErrorPolicy, Finished, MapOptions};
use crate::active::{self, ActivePlan};
use crate::capture::Capture;
use crate::each::{Combine, Failure, Unwatched, ViewOf, Watch, run_chunk};
use crate::execute::TimeLimit;
use crate::progress::{self, Progress};
use crate::{relay, rng};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
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

/// Runs all elements on `workers` threads (the calling thread when 1), with
/// `nested` as the plan the bodies see.
pub(super) fn run<'v, C, E, R, F, G, V, I>(
    body: &F,
    combine: G,
    vars: &'v V,
    items: I,
    workers: usize,
    nested: Option<Arc<ActivePlan>>,
    options: &MapOptions,
) -> Finished<R>
where
    C: ViewOf<V> + 'v,
    E: Capture + 'v,
    E::Item<'v>: Send,
    I: Iterator<Item = E::Item<'v>> + Send,
    V: Sync + ?Sized,
    R: Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    let (lower, upper) = items.size_hint();
    let (total, source) = match options.ordering {
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
    let streams = options.seed.map(|s| s.streams(total as u64));
    let queue = Mutex::new(Queue {
        planner: ChunkPlanner::new(
            total,
            workers,
            options.sizing,
            options.ordering,
            TARGET_CHUNK_TIME,
        )
        .with_max_chunk(MAX_CHUNK),
        source,
    });
    let bar = super::start_bar(options, total);
    let finished = Mutex::new(Vec::new());
    // The lowest failed element index so far: elements after it are not run
    // (under `stop`), elements before it still are, as they may fail earlier.
    let failed_at = AtomicUsize::new(usize::MAX);
    let stop = options.errors == ErrorPolicy::Stop;
    let work = || {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next_chunk();
            let Some((range, elements)) = next else { break };
            if stop && range.start > failed_at.load(AtomicOrdering::Relaxed) {
                continue;
            }
            let started = Instant::now();
            let watched = bar.is_some() || options.timeout.is_some();
            let mut watch = ElementWatch {
                bar: bar.as_deref(),
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
                progress::with_bar(bar.as_ref(), || {
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
            queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .planner
                .record(range.len(), elapsed);
            done.push((range, Ok(output)));
        }
        finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&mut done);
    };
    let work_within = || match &nested {
        Some(plan) => active::within(plan, work),
        None => work(),
    };
    if workers == 1 {
        work_within();
    } else {
        std::thread::scope(|s| {
            for _ in 1..workers {
                s.spawn(work_within);
            }
            work_within();
        });
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    finished.into_inner().unwrap_or_else(|p| p.into_inner())
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
