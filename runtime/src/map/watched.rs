//! A chunk run in this process with something around each element: the
//! call's bar moves as each element returns, and an element that ran past
//! its `timeout` fails (a thread cannot be interrupted, so the limit is
//! checked when the element returns). Chunks with neither run through the
//! call site's tight loop alone (`call.rs`).

use super::call::{ChunkHere, Site};
use super::elements::Elements;
use crate::body::chunk::{ChunkOutput, Failure, Watch};
use crate::progress::Progress;
use crate::settings::TimeLimit;
use std::time::Instant;

/// Runs a chunk with something around each element (a bar, a time limit):
/// its elements one at a time through the call site's one chunk loop, the
/// watch around each. A call site thus compiles one loop, the tight one;
/// what a watched element costs more (a call and a panic catcher) is small
/// next to what the watch itself does.
pub(super) fn run_watched<S: Elements, R>(
    site: &dyn Site<S, R>,
    chunk: ChunkHere<'_, S, R>,
    watch: &mut ElementWatch<'_>,
) -> ChunkOutput<R> {
    let ChunkHere {
        range,
        source,
        elements,
        slots,
        stop,
        seeded,
    } = chunk;
    let mut out = ChunkOutput::of(Vec::new(), None, Vec::new());
    let mut end = range.start;
    for (p, i) in range.clone().enumerate() {
        watch.started(p);
        let one = site.run(ChunkHere {
            range: i..i + 1,
            source,
            elements: &mut *elements,
            slots,
            stop,
            seeded,
        });
        let over = watch.finished(p);
        end = i + 1;
        let failure = if let Some((_, failure)) = one.failures.into_iter().next() {
            Some(failure)
        } else if let Some(failure) = over {
            if let Some(slots) = slots {
                // SAFETY: the element succeeded, so its slot was written;
                // it is moved out once, here, and skipped below.
                drop(unsafe { slots.take(i..i + 1, &[]) });
            }
            Some(failure)
        } else {
            out.values.extend(one.values);
            match (out.folded.take(), one.folded) {
                (Some(acc), Some(v)) => match crate::body::catch(|| site.combine(acc, v)) {
                    Ok(v) => {
                        out.folded = Some(v);
                        None
                    }
                    Err(panic) => Some(Failure::Panicked(panic)),
                },
                (acc, v) => {
                    out.folded = acc.or(v);
                    None
                }
            }
        };
        if let Some(failure) = failure {
            out.failures.push((p as u32, failure));
            if stop {
                break;
            }
        }
    }
    if let Some(slots) = slots
        && !out.failures.is_empty()
    {
        // SAFETY: this chunk wrote the slots of `range.start..end` but the
        // failed ones (which `take` skips, as the timed-out ones were moved
        // out above); they are moved out once, here.
        out.values = unsafe { slots.take(range.start..end, &out.failures) };
    }
    out
}

/// Around each element here: the bar moves as it returns, and an element
/// that ran past its time limit fails (it could not be stopped earlier: a
/// thread cannot be interrupted).
pub(super) struct ElementWatch<'a> {
    bar: Option<&'a Progress>,
    limit: Option<&'a TimeLimit>,
    started: Option<Instant>,
    /// When the previous element of the chunk ended: the next one starts
    /// then (what runs between two elements takes nanoseconds), so each
    /// element reads the clock once.
    last_end: Option<Instant>,
}

impl<'a> ElementWatch<'a> {
    /// A watch that moves `bar` and checks `limit`, each when given.
    pub(super) fn new(bar: Option<&'a Progress>, limit: Option<&'a TimeLimit>) -> Self {
        ElementWatch {
            bar,
            limit,
            started: None,
            last_end: None,
        }
    }
}

impl Watch for ElementWatch<'_> {
    fn started(&mut self, _: usize) {
        if self.limit.is_some() {
            self.started = Some(self.last_end.take().unwrap_or_else(Instant::now));
        }
    }

    fn finished(&mut self, _: usize) -> Option<Failure> {
        if let Some(bar) = self.bar {
            bar.elements(1);
        }
        let (limit, started) = (self.limit?, self.started.take()?);
        let now = Instant::now();
        self.last_end = Some(now);
        (now.duration_since(started) > limit.limit).then(|| Failure::TimedOut {
            after: limit.text.clone(),
        })
    }
}
