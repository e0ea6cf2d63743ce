//! Cutting elements into chunks, and choosing chunk sizes.
//!
//! Chunks are contiguous ranges of element indices, so `combine` sees values
//! in element order. A fixed size comes from `chunk_size` or from
//! `scheduling` (chunks per worker); those chunks are dispatched in the
//! `ordering` asked for. Otherwise sizes adapt, in the spirit of joblib's
//! automatic batching: each finished chunk's duration per element updates an
//! estimate, and the next chunk is sized to take about `target` (a multiple
//! of the backend's per-chunk overhead), while leaving at least four chunks
//! per worker in what remains so that load stays balanced. On worker
//! processes, once the rest takes at most one target duration per worker, it
//! is split evenly instead, since every extra chunk costs a round trip.

use std::ops::Range;
use std::time::Duration;

/// In which order chunks are handed out (results come back in element order
/// whatever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// First elements first.
    #[default]
    Forward,
    /// Last elements first.
    Reverse,
    /// A shuffled order (the same for the same number of chunks).
    Random,
}

/// How chunk sizes are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sizing {
    /// `chunk_size = n`.
    Fixed(usize),
    /// `scheduling = s`: about `s` chunks per worker (`f64::INFINITY`: one element each).
    PerWorker(f64),
    /// Sizes from measured element durations.
    Adaptive,
}

pub(crate) struct ChunkPlanner {
    total: usize,
    workers: usize,
    /// Precomputed chunks in dispatch order (fixed sizes), consumed from the end.
    planned: Option<Vec<Range<usize>>>,
    /// Next undispatched element (adaptive).
    next: usize,
    target: Duration,
    per_element: Option<f64>,
    /// Elements measured so far, and their seconds in all.
    measured: (usize, f64),
    /// Once the rest fits in one target duration per worker: the size of
    /// each worker's share of it.
    final_share: Option<usize>,
    /// The largest adaptive chunk.
    max_chunk: usize,
    /// Split the rest evenly once it fits in one target duration per worker.
    even_final_round: bool,
    /// When only some elements run (the others' values are cached): the
    /// runs of element indices that do, with each run's first position
    /// among them. Chunks are planned over positions `0..total` and handed
    /// out as element ranges, a chunk across a gap as its pieces.
    runs: Option<Vec<(usize, Range<usize>)>>,
    /// Pieces of a chunk not yet handed out, the next last.
    pieces: Vec<Range<usize>>,
}

impl ChunkPlanner {
    pub(crate) fn new(
        total: usize,
        workers: usize,
        sizing: Sizing,
        ordering: Ordering,
        target: Duration,
    ) -> Self {
        let workers = workers.max(1);
        let fixed = match sizing {
            Sizing::Fixed(n) => Some(n.max(1)),
            Sizing::PerWorker(s) if s.is_infinite() => Some(1),
            Sizing::PerWorker(s) => {
                let chunks = (s * workers as f64).ceil().max(1.0) as usize;
                Some(total.div_ceil(chunks).max(1))
            }
            // Only forward dispatch can adapt: other orders need every chunk up front.
            Sizing::Adaptive if ordering != Ordering::Forward => {
                Some(total.div_ceil(4 * workers).max(1))
            }
            Sizing::Adaptive => None,
        };
        let planned = fixed.map(|size| {
            let mut chunks: Vec<Range<usize>> = (0..total)
                .step_by(size)
                .map(|start| start..(start + size).min(total))
                .collect();
            match ordering {
                Ordering::Forward => chunks.reverse(),
                Ordering::Reverse => {}
                Ordering::Random => shuffle(&mut chunks),
            }
            chunks
        });
        ChunkPlanner {
            total,
            workers,
            planned,
            next: 0,
            target,
            per_element: None,
            measured: (0, 0.0),
            final_share: None,
            max_chunk: usize::MAX,
            even_final_round: false,
            runs: None,
            pieces: Vec::new(),
        }
    }

    /// Plans only the elements of `runs` (sorted, disjoint element ranges
    /// whose lengths add up to the planner's total).
    pub(crate) fn over(mut self, runs: &[Range<usize>]) -> Self {
        let mut position = 0;
        let runs = runs
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                let at = position;
                position += r.len();
                (at, r.clone())
            })
            .collect();
        self.runs = Some(runs);
        self
    }

    /// The element ranges of positions `positions`, first first.
    fn pieces_of(runs: &[(usize, Range<usize>)], positions: Range<usize>) -> Vec<Range<usize>> {
        let mut pieces = Vec::new();
        let first = runs.partition_point(|(at, r)| at + r.len() <= positions.start);
        for (at, run) in &runs[first..] {
            if *at >= positions.end {
                break;
            }
            let from = positions.start.max(*at) - at;
            let to = positions.end.min(at + run.len()) - at;
            pieces.push(run.start + from..run.start + to);
        }
        pieces
    }

    /// Once the rest takes at most one target duration per worker, hand it
    /// out as one even share per worker instead of ever smaller chunks: worth
    /// it where each chunk costs a round trip (worker processes).
    pub(crate) fn with_even_final_round(mut self) -> Self {
        self.even_final_round = true;
        self
    }

    /// Caps adaptive chunk sizes (so that a chunk's elements and values stay
    /// in cache); sizes the user fixed are left alone.
    pub(crate) fn with_max_chunk(mut self, max_chunk: usize) -> Self {
        self.max_chunk = max_chunk.max(1);
        self
    }

    /// Starts adaptive sizing from what an element is expected to take
    /// (seconds), instead of from a first chunk of one element.
    pub(crate) fn with_estimate(mut self, per_element: Option<f64>) -> Self {
        self.per_element = per_element.filter(|t| t.is_finite() && *t >= 0.0);
        self
    }

    /// What an element took on average (seconds) in the chunks so far:
    /// the whole call's cost per element, which one slow chunk or a first
    /// chunk of one element barely moves, and which cheap elements beside
    /// costly ones cannot understate.
    pub(crate) fn mean(&self) -> Option<f64> {
        (self.measured.0 > 0).then(|| self.measured.1 / self.measured.0 as f64)
    }

    /// The next chunk to hand out: element indices.
    pub(crate) fn next_chunk(&mut self) -> Option<Range<usize>> {
        if let Some(piece) = self.pieces.pop() {
            return Some(piece);
        }
        let positions = self.next_positions()?;
        let Some(runs) = &self.runs else {
            return Some(positions);
        };
        let mut pieces = Self::pieces_of(runs, positions);
        pieces.reverse();
        let first = pieces.pop();
        self.pieces = pieces;
        first
    }

    /// The next chunk's positions among the elements planned.
    fn next_positions(&mut self) -> Option<Range<usize>> {
        if let Some(planned) = &mut self.planned {
            return planned.pop();
        }
        if self.next >= self.total {
            return None;
        }
        let remaining = self.total - self.next;
        let balanced = (remaining / (4 * self.workers)).max(1);
        let size = match (self.final_share, self.per_element) {
            (Some(share), _) => share,
            (None, None) => 1,
            (None, Some(t)) => {
                let ideal = if t > 0.0 {
                    (self.target.as_secs_f64() / t).min(usize::MAX as f64) as usize
                } else {
                    usize::MAX
                };
                if self.even_final_round && remaining / self.workers <= ideal {
                    // The rest takes at most one target duration per worker:
                    // one even share each, without a tail of small chunks.
                    let share = remaining.div_ceil(self.workers).min(self.max_chunk);
                    self.final_share = Some(share);
                    share
                } else {
                    ideal.clamp(1, balanced).min(self.max_chunk)
                }
            }
        };
        let start = self.next;
        self.next = (self.next + size).min(self.total);
        Some(start..self.next)
    }

    /// A chunk of `elements` took `elapsed`.
    pub(crate) fn record(&mut self, elements: usize, elapsed: Duration) {
        if elements == 0 {
            return;
        }
        let t = elapsed.as_secs_f64() / elements as f64;
        self.measured.0 += elements;
        self.measured.1 += elapsed.as_secs_f64();
        self.per_element = Some(match self.per_element {
            None => t,
            // A measured time includes the chunk's fixed cost (a round trip on
            // processes), which small first chunks spread over few elements:
            // take a lower estimate at once, so sizes grow quickly, and
            // smooth increases.
            Some(old) if t < old => t,
            Some(old) => 0.5 * old + 0.5 * t,
        });
    }
}

/// A deterministic shuffle (splitmix64 driven Fisher–Yates).
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ items.len() as u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut p: ChunkPlanner) -> Vec<Range<usize>> {
        std::iter::from_fn(|| p.next_chunk()).collect()
    }

    const T: Duration = Duration::from_millis(1);

    #[test]
    fn chunks_over_runs_skip_the_gaps_and_cover_each_element_once() {
        let runs = [0..3, 5..6, 10..14];
        let p = ChunkPlanner::new(8, 2, Sizing::Fixed(3), Ordering::Forward, T).over(&runs);
        assert_eq!(all(p), vec![0..3, 5..6, 10..12, 12..14]);
        let p = ChunkPlanner::new(8, 2, Sizing::Adaptive, Ordering::Forward, T).over(&runs);
        let mut covered: Vec<usize> = all(p).into_iter().flatten().collect();
        covered.sort_unstable();
        assert_eq!(covered, vec![0, 1, 2, 5, 10, 11, 12, 13]);
    }

    #[test]
    fn fixed_and_per_worker_sizes() {
        let chunks = all(ChunkPlanner::new(
            10,
            2,
            Sizing::Fixed(4),
            Ordering::Forward,
            T,
        ));
        assert_eq!(chunks, vec![0..4, 4..8, 8..10]);
        let chunks = all(ChunkPlanner::new(
            10,
            2,
            Sizing::PerWorker(1.0),
            Ordering::Forward,
            T,
        ));
        assert_eq!(chunks, vec![0..5, 5..10]);
        let chunks = all(ChunkPlanner::new(
            3,
            2,
            Sizing::PerWorker(f64::INFINITY),
            Ordering::Reverse,
            T,
        ));
        assert_eq!(chunks, vec![2..3, 1..2, 0..1]);
    }

    #[test]
    fn random_order_covers_every_element_once() {
        let mut chunks = all(ChunkPlanner::new(
            100,
            2,
            Sizing::Fixed(7),
            Ordering::Random,
            T,
        ));
        assert_ne!(chunks.first(), Some(&(0..7)));
        chunks.sort_by_key(|r| r.start);
        let covered: Vec<usize> = chunks.into_iter().flatten().collect();
        assert_eq!(covered, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn the_mean_weighs_every_element_measured() {
        let mut p = ChunkPlanner::new(100, 2, Sizing::Adaptive, Ordering::Forward, T);
        assert_eq!(p.mean(), None);
        p.record(1, Duration::from_micros(1));
        p.record(9, Duration::from_millis(9));
        let mean = p.mean().unwrap();
        assert!((mean - 9.001e-4).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn adaptive_sizes_grow_toward_the_target_and_keep_balance() {
        let mut p = ChunkPlanner::new(1_000_000, 2, Sizing::Adaptive, Ordering::Forward, T);
        assert_eq!(p.next_chunk(), Some(0..1));
        // 1 µs per element: a 1 ms target asks for 1000 elements.
        p.record(1, Duration::from_micros(1));
        assert_eq!(p.next_chunk().map(|r| r.len()), Some(1000));
        // A lower estimate is taken at once; a higher one is smoothed.
        p.record(1000, Duration::from_millis(2));
        assert_eq!(p.next_chunk().map(|r| r.len()), Some(666));
        // Slow elements: chunks keep at least four per worker in what remains.
        let mut p = ChunkPlanner::new(100, 2, Sizing::Adaptive, Ordering::Forward, T);
        p.record(1, Duration::from_micros(100));
        assert_eq!(p.next_chunk().map(|r| r.len()), Some(10));
        p.record(10, Duration::from_millis(1));
        assert_eq!(p.next_chunk().map(|r| r.len()), Some(10));
        // Cheap elements: the rest fits in one target duration per worker and
        // is split evenly, with no tail of small chunks.
        let mut p = ChunkPlanner::new(101, 2, Sizing::Adaptive, Ordering::Forward, T)
            .with_even_final_round();
        assert_eq!(p.next_chunk(), Some(0..1));
        p.record(1, Duration::from_nanos(10));
        assert_eq!(p.next_chunk(), Some(1..51));
        assert_eq!(p.next_chunk(), Some(51..101));
        assert_eq!(p.next_chunk(), None);
    }
}
