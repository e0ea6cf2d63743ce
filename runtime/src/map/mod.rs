//! The map engine behind `foreach!`: elements cut into chunks, chunks run
//! where the plan's backend runs them, values back in element order.
//!
//! The engine never asks which kind of backend it has. It asks the backend
//! of the plan in force, once per call, how it runs chunks
//! ([`ChunkWorkers`](crate::backend::ChunkWorkers)): threads of this process
//! that it lends to the call (the calling thread among them; bodies borrow
//! the caller's captures and elements directly, nothing is copied or
//! encoded), or workers elsewhere that take each chunk as a
//! [`Work`](crate::backend::Work) (`remote`: the captures are encoded once
//! per call and sent once to each worker process that runs a chunk of the
//! call, which keeps them; each chunk carries only its elements). The engine
//! calls down into the backend and the backend never calls back. `%do%`
//! runs the call in the calling thread, whatever the plan.
//!
//! Every element runs under its own panic catcher, so one failure never
//! takes its chunk's other values with it. What happens next is the error
//! policy's: `stop` (the default) returns the failure with the lowest element
//! index and stops what is still running, `remove` drops failed elements,
//! `pass` hands back one `Result` per element.

mod cached;
mod call;
mod chunks;
mod elements;
mod in_place;
mod outcome;
mod remote;
mod site;
mod watched;

pub use chunks::{Ordering, Sizing};
pub use elements::{
    __elements_probe, BindingsByIndex, ByIndex, Elements, ElementsProbe, ElementsViaIndex,
    ElementsViaIter, Indexed, IndexedKind, Pulled, PulledKind, Zipped,
};

use crate::Error;
use crate::active;
use crate::body::capture::Capture;
use crate::body::capture::SendsBack;
use crate::body::chunk::{ChunkEntryOf, ChunkFn, ChunkOutput, Combine};
use crate::body::foreach_capture::ViewOf;
use crate::relay;
use crate::rng::SeedSpec;
use crate::settings::Settings;
use crate::sync::lock;
use serde::Serialize;
use std::ops::Range;

pub use crate::settings::ErrorPolicy;

/// The options of one `foreach!` call: how its elements are cut and
/// ordered, and the [`Settings`] its chunks run with.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// `chunk_size` / `scheduling`, or adaptive.
    pub sizing: Sizing,
    /// `ordering = ".."`.
    pub ordering: Ordering,
    /// `%do%`: run in the calling thread whatever the plan.
    pub in_place: bool,
    /// `seed = ...`: every element gets its own random stream.
    pub seed: Option<SeedSpec>,
    /// Everything else, as each chunk runs with it.
    pub settings: Settings,
    /// `cache = ...`, and where the call is (for its cache key).
    pub cache: Option<crate::cache::CacheSpec>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            sizing: Sizing::Adaptive,
            ordering: Ordering::Forward,
            in_place: false,
            seed: None,
            settings: Settings::default(),
            cache: None,
        }
    }
}

/// Chunks as they finished: their element range and what they produced (or
/// why the whole chunk was lost).
pub(crate) type Finished<R> = Vec<(Range<usize>, Result<ChunkOutput<R>, Error>)>;

/// Runs every element of a call and returns what the chunks produced: the
/// driver, generic over the elements and the value alone; what depends on
/// the body is behind `site`.
fn run<S, R>(
    site: &dyn call::Site<S, R>,
    combines: bool,
    entry: ChunkFn,
    elements: S,
    options: &MapOptions,
) -> Result<Ran<R>, Error>
where
    S: Elements,
    S::Item: Send,
    R: Send,
{
    let mut call = call::Call::new(site, combines, entry, elements, options);
    call.open_cache(combines)?;
    let ran = if call.all_cached() {
        // Every value was kept by an earlier run: no worker is needed.
        Ok(())
    } else if options.in_place {
        call.plan_here(1);
        call.work_here();
        Ok(())
    } else {
        active::active()
            .and_then(|plan| plan.backend())
            .and_then(|b| crate::backend::for_resources(b, options.settings.resources()))
            .and_then(|backend| call.run_on(&*backend))
    };
    if let Some(Some(bar)) = call.bar.get() {
        bar.finish();
    }
    ran?;
    call.remember_cost();
    let in_place = call.values_in_place();
    let finished = std::mem::take(&mut *lock(&call.finished));
    Ok(Ran {
        finished: in_order(finished, options.settings.label.as_deref()),
        in_place,
    })
}

/// What a call's chunks produced: every chunk's output in element order,
/// and all values when they were written in place and every element
/// succeeded (the chunks' outputs then hold no values).
struct Ran<R> {
    finished: Finished<R>,
    in_place: Option<Vec<R>>,
}

/// Shows what the chunks printed, in element order; under `errors = "stop"`
/// only up to the failure the call returns, as if the elements had run one
/// after the other.
fn relay_output<R>(finished: &Finished<R>, until: Option<usize>, label: Option<&str>) {
    for (range, result) in finished {
        if until.is_some_and(|f| range.start > f) {
            break;
        }
        if let Ok(out) = result {
            relay::relay(&out.output);
            // Values from the cache: their records, as the run that
            // computed them logged them.
            if out.replay_logs {
                for record in &out.logs {
                    crate::backend::emit_log(record.clone(), label);
                }
            }
        }
    }
}

/// The values of chunks in order, in one `Vec`: the first chunk's grown
/// to hold them all (a `realloc`, which moves large buffers without
/// copying), the others' moved onto its end with one copy each. Collecting
/// it into a `Vec` then takes the buffer as it is, and into any other
/// collection element by element.
fn concatenated<R>(chunks: Vec<Vec<R>>) -> Vec<R> {
    let total: usize = chunks.iter().map(Vec::len).sum();
    let mut chunks = chunks.into_iter();
    let mut all = chunks.next().unwrap_or_default();
    all.reserve_exact(total - all.len());
    for mut chunk in chunks {
        all.append(&mut chunk);
    }
    all
}

/// Finished chunks in element order; each failed one is marked in the
/// trace.
fn in_order<R>(mut finished: Finished<R>, label: Option<&str>) -> Finished<R> {
    finished.sort_by_key(|(range, _)| range.start);
    if crate::trace::on() {
        for (range, result) in &finished {
            let failed = match result {
                Ok(out) => out.failures.first().map(|(p, f)| {
                    let index = range.start + *p as usize;
                    (index, f.clone().into_error(label, index))
                }),
                Err(e) => Some((range.start, e.clone())),
            };
            if let Some((first, error)) = failed {
                crate::trace::chunk_failed(range, first, label, error.to_string());
            }
        }
    }
    finished
}

/// The failure with the lowest element index, if any, and that index.
fn first_failure<R>(finished: &Finished<R>, label: Option<&str>) -> Option<(usize, Error)> {
    finished
        .iter()
        .filter_map(|(range, result)| match result {
            Ok(out) => out
                .failures
                .first()
                .map(|(p, f)| (range.start + *p as usize, Some(f), None)),
            Err(e) => Some((range.start, None, Some(e))),
        })
        .min_by_key(|(index, _, _)| *index)
        .map(|(index, failure, lost)| {
            let error = match (failure, lost) {
                (Some(f), _) => f.clone().into_error(label, index),
                (None, Some(e)) => e.clone().with_element(label, index),
                (None, None) => unreachable!("a failure or a lost chunk"),
            };
            (index, error)
        })
}

/// One `Result` per element of one chunk, in order.
fn chunk_results<R>(
    range: Range<usize>,
    result: Result<ChunkOutput<R>, Error>,
    label: Option<&str>,
) -> Vec<Result<R, Error>> {
    match result {
        Err(e) => range
            .map(|i| Err(e.clone().with_element(label, i)))
            .collect(),
        Ok(out) => {
            let ran = out.ran();
            let mut values = out.values.into_iter();
            let mut failures = out.failures.into_iter().peekable();
            (0..ran)
                .map(|p| match failures.next_if(|(fp, _)| *fp as usize == p) {
                    Some((_, f)) => Err(f.into_error(label, range.start + p)),
                    None => Ok(values
                        .next()
                        .expect("a value for every element that did not fail")),
                })
                .collect()
        }
    }
}

/// `foreach!` without `combine`, `errors = "stop"` or `"remove"`: the values
/// in element order.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __foreach_collect<'v, C, E, R, F, G, V, S, Out>(
    _: &C,
    _: &E,
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    elements: S,
    options: MapOptions,
) -> Result<Out, Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    S: Elements<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Sync + ?Sized,
    R: SendsBack,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
    Out: FromIterator<R>,
{
    let site = call::Body::<C, E, F, G, V>::new(body, combine, vars);
    let ran = run::<S, R>(&site, G::ACTIVE, entry.entry, elements, &options);
    collected(ran, &options)
}

/// The values of a call in element order, as `__foreach_collect` returns
/// them (generic over the value and the collection alone).
fn collected<R, Out: FromIterator<R>>(
    ran: Result<Ran<R>, Error>,
    options: &MapOptions,
) -> Result<Out, Error> {
    let Ran { finished, in_place } = ran?;
    if let Some(values) = in_place {
        relay_output(&finished, None, options.settings.label.as_deref());
        return Ok(values.into_iter().collect());
    }
    let failure = match options.settings.errors {
        ErrorPolicy::Stop => first_failure(&finished, options.settings.label.as_deref()),
        _ => None,
    };
    relay_output(
        &finished,
        failure.as_ref().map(|(i, _)| *i),
        options.settings.label.as_deref(),
    );
    if let Some((_, e)) = failure {
        return Err(e);
    }
    // Failed elements have no value, so what remains is the `remove` result.
    let chunks: Vec<Vec<R>> = finished
        .into_iter()
        .filter_map(|(_, r)| r.ok().map(|out| out.values))
        .collect();
    Ok(concatenated(chunks).into_iter().collect())
}

/// `foreach!` with `errors = "pass"`: one `Result` per element, in order.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __foreach_pass<'v, C, E, R, F, G, V, S, Out>(
    _: &C,
    _: &E,
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    elements: S,
    options: MapOptions,
) -> Result<Out, Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    S: Elements<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Sync + ?Sized,
    R: SendsBack,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
    Out: FromIterator<Result<R, Error>>,
{
    let site = call::Body::<C, E, F, G, V>::new(body, combine, vars);
    let ran = run::<S, R>(&site, G::ACTIVE, entry.entry, elements, &options);
    passed(ran, &options)
}

/// One `Result` per element, in order, as `__foreach_pass` returns them.
fn passed<R, Out: FromIterator<Result<R, Error>>>(
    ran: Result<Ran<R>, Error>,
    options: &MapOptions,
) -> Result<Out, Error> {
    let Ran { finished, in_place } = ran?;
    relay_output(&finished, None, options.settings.label.as_deref());
    if let Some(values) = in_place {
        return Ok(values.into_iter().map(Ok).collect());
    }
    let label = options.settings.label.as_deref();
    Ok(finished
        .into_iter()
        .flat_map(|(range, result)| chunk_results(range, result, label))
        .collect())
}

/// `foreach!` with `combine`: values combined within chunks on the workers,
/// then across chunks here, in element order.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __foreach_combine<'v, C, E, R, F, G, V, S>(
    _: &C,
    _: &E,
    body: &F,
    combine: G,
    entry: ChunkEntryOf<R>,
    vars: &'v V,
    elements: S,
    options: MapOptions,
) -> Result<R, Error>
where
    C: ViewOf<V> + 'v,
    C::Owned: 'static,
    E: Capture + 'v,
    S: Elements<Item = E::Item<'v>>,
    E::Item<'v>: Serialize + Send,
    V: Sync + ?Sized,
    R: SendsBack,
    F: for<'b> Fn(C::Ref<'b>, E::Ref<'b>) -> R + Sync,
    G: Combine<R>,
{
    let site = call::Body::<C, E, F, G, V>::new(body, combine, vars);
    let ran = run::<S, R>(&site, G::ACTIVE, entry.entry, elements, &options);
    combined(ran, &|a, b| combine.combine(a, b), &options)
}

/// The combined value of a call, as `__foreach_combine` returns it.
fn combined<R>(
    ran: Result<Ran<R>, Error>,
    combine: &dyn Fn(R, R) -> R,
    options: &MapOptions,
) -> Result<R, Error> {
    let Ran { finished, .. } = ran?;
    let failure = match options.settings.errors {
        ErrorPolicy::Stop => first_failure(&finished, options.settings.label.as_deref()),
        _ => None,
    };
    relay_output(
        &finished,
        failure.as_ref().map(|(i, _)| *i),
        options.settings.label.as_deref(),
    );
    if let Some((_, e)) = failure {
        return Err(e);
    }
    finished
        .into_iter()
        .filter_map(|(_, r)| r.ok().and_then(|out| out.folded))
        .reduce(combine)
        .ok_or_else(|| Error::NothingToCombine {
            label: options.settings.label.clone(),
        })
}
