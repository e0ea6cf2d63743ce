//! Chunks run in this process: in the calling thread (one worker) or on
//! scoped threads that borrow the caller's captures and elements.

use super::chunks::ChunkPlanner;
use super::{ErrorPolicy, Finished, MapOptions};
use crate::active::{self, ActivePlan};
use crate::capture::Capture;
use crate::each::{ChunkOutput, Combine, ViewOf, run_chunk};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a chunk costs to hand out here: a lock and a small allocation.
const TARGET_CHUNK_TIME: Duration = Duration::from_micros(100);

struct Queue<T> {
    planner: ChunkPlanner,
    items: Vec<Option<T>>,
}

/// Runs all elements on `workers` threads (the calling thread when 1), with
/// `nested` as the plan the bodies see.
pub(super) fn run<'v, C, E, R, F, G, V>(
    body: &F,
    combine: G,
    vars: &'v V,
    items: Vec<E::Item<'v>>,
    workers: usize,
    nested: Option<Arc<ActivePlan>>,
    options: &MapOptions,
) -> Finished<R>
where
    C: ViewOf<V> + 'v,
    E: Capture + 'v,
    E::Item<'v>: Send,
    V: Sync + ?Sized,
    R: Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    let total = items.len();
    let workers = workers.min(total).max(1);
    let queue = Mutex::new(Queue {
        planner: ChunkPlanner::new(
            total,
            workers,
            options.sizing,
            options.ordering,
            TARGET_CHUNK_TIME,
        ),
        items: items.into_iter().map(Some).collect(),
    });
    let finished = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let stop = options.errors == ErrorPolicy::Stop;
    let work = || {
        let mut done = Vec::new();
        loop {
            if stop && failed.load(Ordering::Relaxed) {
                break;
            }
            let (range, elements) = {
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                let Some(range) = q.planner.next_chunk() else {
                    break;
                };
                let elements: Vec<E::Item<'v>> = q.items[range.clone()]
                    .iter_mut()
                    .map(|e| e.take().expect("each element is handed out once"))
                    .collect();
                (range, elements)
            };
            let started = Instant::now();
            let output = run_chunk(
                elements.into_iter(),
                |e| body(C::view(vars), E::pass(e)),
                combine,
                stop,
                &|| stop && failed.load(Ordering::Relaxed),
            );
            let elapsed = started.elapsed();
            if has_failure(&output) {
                failed.store(true, Ordering::Relaxed);
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
    finished.into_inner().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn has_failure<R>(output: &ChunkOutput<R>) -> bool {
    match output {
        ChunkOutput::Each(values) => values.iter().any(Result::is_err),
        ChunkOutput::Folded(_, failures) => !failures.is_empty(),
    }
}
