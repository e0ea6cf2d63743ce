//! The map engine behind `foreach!`: elements cut into chunks, chunks run
//! where the plan says, values back in element order.
//!
//! * In place (`%do%`, or a `Sequential` plan): the calling thread runs every
//!   element; no bytes.
//! * `Multithread(n)`: `n` scoped threads take chunks from one queue. The
//!   call blocks until all are done, so the body borrows the caller's
//!   captures and elements directly: nothing is copied or encoded.
//! * Worker processes: the captures are encoded once per call and sent once
//!   to each worker that runs a chunk of the call, which caches them; each
//!   chunk carries only its elements.
//!
//! Every element runs under its own panic catcher, so one failure never
//! takes its chunk's other values with it. What happens next is the error
//! policy's: `stop` (the default) returns the failure with the lowest element
//! index and stops what is still running, `remove` drops failed elements,
//! `pass` hands back one `Result` per element.

mod chunks;
mod in_process;
mod on_processes;

pub use chunks::{Ordering, Sizing};

use crate::active;
use crate::capture::Capture;
use crate::each::{ChunkEntryOf, ChunkOutput, Combine, ViewOf};
use crate::{Error, Level};
use serde::{Serialize, de::DeserializeOwned};
use std::ops::Range;

/// What `errors = "..."` asks for when elements fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Return the first failure (lowest index) and stop the rest.
    #[default]
    Stop,
    /// Leave failed elements out of the result.
    Remove,
    /// Give one `Result` per element.
    Pass,
}

/// The options of one `foreach!` call.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// `label = ".."`.
    pub label: Option<String>,
    /// `chunk_size` / `scheduling`, or adaptive.
    pub sizing: Sizing,
    /// `ordering = ".."`.
    pub ordering: Ordering,
    /// `errors = ".."`.
    pub errors: ErrorPolicy,
    /// `%do%`: run in the calling thread whatever the plan.
    pub in_place: bool,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            label: None,
            sizing: Sizing::Adaptive,
            ordering: Ordering::Forward,
            errors: ErrorPolicy::Stop,
            in_place: false,
        }
    }
}

/// Chunks as they finished: their element range and what they produced (or
/// why the whole chunk was lost).
pub(crate) type Finished<R> = Vec<(Range<usize>, Result<ChunkOutput<R>, Error>)>;

/// Runs every element and returns the raw chunk results.
#[allow(clippy::too_many_arguments)]
fn run<'v, C, E, R, F, G, V, I>(
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    items: I,
    options: &MapOptions,
) -> Result<(usize, Finished<R>), Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    I: Iterator<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Serialize + Sync + ?Sized,
    R: Serialize + DeserializeOwned + Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    let items: Vec<E::Item<'v>> = items.collect();
    let total = items.len();
    let stop = options.errors == ErrorPolicy::Stop;
    if options.in_place {
        let done =
            in_process::run::<C, E, R, F, G, V>(body, combine, vars, items, 1, None, options);
        return Ok((total, done));
    }
    let plan = active::active()?;
    let finished = match plan.plan().first() {
        Level::Sequential => in_process::run::<C, E, R, F, G, V>(
            body,
            combine,
            vars,
            items,
            1,
            Some(plan.nested()),
            options,
        ),
        Level::Multithread { workers } => in_process::run::<C, E, R, F, G, V>(
            body,
            combine,
            vars,
            items,
            *workers,
            Some(plan.nested()),
            options,
        ),
        Level::Multiprocess { workers, .. } => on_processes::run(
            &plan.backend()?,
            *workers,
            entry.entry,
            vars,
            &items,
            stop,
            options,
        )?,
    };
    Ok((total, finished))
}

/// One element's result, with its index.
fn element_results<R>(
    finished: Finished<R>,
    label: Option<&str>,
) -> (Vec<(usize, Result<R, Error>)>, Vec<(usize, Option<R>)>) {
    let mut each = Vec::new();
    let mut folded = Vec::new();
    for (range, result) in finished {
        match result {
            Ok(ChunkOutput::Each(values)) => {
                for (i, v) in values.into_iter().enumerate() {
                    let index = range.start + i;
                    each.push((index, v.map_err(|f| f.into_error(label, index))));
                }
            }
            Ok(ChunkOutput::Folded(value, failures)) => {
                for (position, f) in failures {
                    let index = range.start + position as usize;
                    each.push((index, Err(f.into_error(label, index))));
                }
                folded.push((range.start, value));
            }
            Err(e) => {
                // The whole chunk was lost (its worker died): every element of it failed.
                for index in range {
                    each.push((index, Err(e.clone().with_element(label, index))));
                }
            }
        }
    }
    each.sort_by_key(|(i, _)| *i);
    folded.sort_by_key(|(i, _)| *i);
    (each, folded)
}

fn first_failure<R>(each: &mut Vec<(usize, Result<R, Error>)>) -> Option<Error> {
    let position = each.iter().position(|(_, r)| r.is_err())?;
    each.swap_remove(position).1.err()
}

/// `foreach!` without `combine`, `errors = "stop"` or `"remove"`: the values
/// in element order.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __foreach_collect<'v, C, E, R, F, G, V, I, Out>(
    _: &C,
    _: &E,
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    items: I,
    options: MapOptions,
) -> Result<Out, Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    I: Iterator<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Serialize + Sync + ?Sized,
    R: Serialize + DeserializeOwned + Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
    Out: FromIterator<R>,
{
    let (_, finished) = run::<C, E, R, F, G, V, I>(body, combine, entry, vars, items, &options)?;
    let (mut each, _) = element_results(finished, options.label.as_deref());
    if options.errors == ErrorPolicy::Stop {
        if let Some(e) = first_failure(&mut each) {
            return Err(e);
        }
    }
    Ok(each.into_iter().filter_map(|(_, r)| r.ok()).collect())
}

/// `foreach!` with `errors = "pass"`: one `Result` per element, in order.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __foreach_pass<'v, C, E, R, F, G, V, I, Out>(
    _: &C,
    _: &E,
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    items: I,
    options: MapOptions,
) -> Result<Out, Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    I: Iterator<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Serialize + Sync + ?Sized,
    R: Serialize + DeserializeOwned + Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
    Out: FromIterator<Result<R, Error>>,
{
    let (_, finished) = run::<C, E, R, F, G, V, I>(body, combine, entry, vars, items, &options)?;
    let (each, _) = element_results(finished, options.label.as_deref());
    Ok(each.into_iter().map(|(_, r)| r).collect())
}

/// `foreach!` with `combine`: values combined within chunks on the workers,
/// then across chunks here, in element order.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __foreach_combine<'v, C, E, R, F, G, V, I>(
    _: &C,
    _: &E,
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    items: I,
    options: MapOptions,
) -> Result<R, Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    I: Iterator<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Serialize + Sync + ?Sized,
    R: Serialize + DeserializeOwned + Send,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    let (_, finished) = run::<C, E, R, F, G, V, I>(body, combine, entry, vars, items, &options)?;
    let (mut each, folded) = element_results(finished, options.label.as_deref());
    if options.errors == ErrorPolicy::Stop {
        if let Some(e) = first_failure(&mut each) {
            return Err(e);
        }
    }
    folded
        .into_iter()
        .filter_map(|(_, v)| v)
        .reduce(|a, b| combine.combine(a, b))
        .ok_or_else(|| Error::NothingToCombine {
            label: options.label.clone(),
        })
}
