//! A cached `foreach!` call (`cache = true`, `FUTURIZE_CACHE`): its elements
//! keyed before planning, the values the cache holds taken as finished
//! chunks, only the rest planned, and each finished chunk's values kept
//! (see `cache`).

use super::call::Call;
use super::elements::Elements;
use crate::Error;
use crate::body::chunk::ChunkOutput;
use crate::cache::CallCache;
use crate::sync::lock;
use std::ops::Range;
use std::sync::Mutex;

/// A cached call: where its values are kept, which elements run, and the
/// elements of an iterator source, collected to key them.
pub(super) struct Cached<T> {
    pub(super) cache: CallCache,
    /// The runs of element indices whose values are not cached.
    pub(super) runs: Vec<Range<usize>>,
    /// How many values the cache gave.
    pub(super) hits: u64,
    pub(super) collected: Mutex<Option<Vec<T>>>,
}

impl<S: Elements, R> Call<'_, S, R> {
    /// Opens the call's cache when caching is on for it: keys every element,
    /// puts the values the cache holds among the finished chunks (with what
    /// their chunks printed), and leaves only the other elements to run.
    /// A combining call is not cached (its chunks fold their values).
    pub(super) fn open_cache(&mut self, combines: bool) -> Result<(), Error> {
        if combines || !crate::cache::wanted(self.options.cache.as_ref()) {
            return Ok(());
        }
        let collected: Option<Vec<S::Item>> = (!S::INDEXED).then(|| {
            self.elements
                .take_iter()
                .expect("a call is cached before it is planned")
                .collect()
        });
        let count = collected
            .as_ref()
            .map_or_else(|| self.elements.len(), Vec::len);
        let (site, elements) = (self.site, &self.elements);
        let mut write = |i: usize, bytes: &mut Vec<u8>| match &collected {
            Some(items) => site.element_bytes(&items[i], bytes),
            // SAFETY: `i < count == len()`.
            None => site.element_bytes(&unsafe { elements.get(i) }, bytes),
        };
        let streams = self.streams(count);
        let captures = self.site.captures_bytes()?;
        let Some(cache) = CallCache::open(
            self.options.cache.as_ref(),
            &captures,
            streams.as_ref(),
            (count, &mut write),
            self.options.settings.label.as_deref(),
        )?
        else {
            return Ok(());
        };
        let (runs, hits) = self.take_hits(&cache, count);
        self.writes_in_place = false;
        self.cached = Some(Cached {
            cache,
            runs,
            hits,
            collected: Mutex::new(collected),
        });
        Ok(())
    }

    /// Moves the cached values among the finished chunks, a chunk per run
    /// of hits; the runs of misses, and how many hits.
    fn take_hits(&self, cache: &CallCache, total: usize) -> (Vec<Range<usize>>, u64) {
        let value_of = |i: usize| {
            let bytes = cache.lookup(i)?;
            match self.site.value_from(bytes) {
                Ok(value) => Some(value),
                Err(e) => {
                    log::warn!("futurize: a cached value is not used (it runs again): {e}");
                    None
                }
            }
        };
        let mut outputs = cache.outputs().into_iter().peekable();
        let (mut runs, mut hits) = (Vec::new(), 0u64);
        let mut finished = lock(&self.finished);
        // One pass: each run of hits becomes a finished chunk, each run of
        // misses a run to plan.
        let (mut start, mut values) = (0, Vec::new());
        let mut close = |start: usize, end: usize, values: &mut Vec<R>| {
            if values.is_empty() {
                if start < end {
                    runs.push(start..end);
                }
                return;
            }
            let mut output = ChunkOutput::of(std::mem::take(values), None, Vec::new());
            while let Some((_, printed, logs)) = outputs.next_if(|(at, _, _)| *at < end) {
                output.output.stdout.extend_from_slice(&printed.stdout);
                output.output.stderr.extend_from_slice(&printed.stderr);
                output.logs.extend(logs);
                output.replay_logs = true;
            }
            hits += (end - start) as u64;
            finished.push((start..end, Ok(output)));
        };
        for i in 0..total {
            match value_of(i) {
                Some(value) => {
                    if values.is_empty() && start < i {
                        close(start, i, &mut values);
                        start = i;
                    }
                    values.push(value);
                }
                None if !values.is_empty() => {
                    close(start, i, &mut values);
                    start = i;
                }
                None => {}
            }
        }
        close(start, total, &mut values);
        (runs, hits)
    }

    /// Keeps a finished chunk's values in the cache, when the call is cached.
    pub(super) fn keep(&self, range: &Range<usize>, output: &ChunkOutput<R>) {
        let Some(cached) = &self.cached else { return };
        let mut failures = output.failures.iter().map(|(p, _)| *p as usize).peekable();
        let mut values = output.values.iter();
        let mut kept = Vec::with_capacity(output.values.len());
        for position in 0..output.ran() {
            if failures.next_if_eq(&position).is_some() {
                continue;
            }
            let Some(value) = values.next() else { break };
            match self.site.value_bytes(value) {
                Ok(bytes) => kept.push((range.start + position, bytes)),
                Err(e) => log::warn!("futurize: a value is not cached: {e}"),
            }
        }
        cached.cache.store(&kept, &output.output, &output.logs);
    }

    /// True when the cache held every value: nothing is left to run.
    pub(super) fn all_cached(&self) -> bool {
        self.cached.as_ref().is_some_and(|c| c.runs.is_empty())
    }
}
