//! Futures and `foreach!` loops share the plan's workers: together they
//! never run more bodies at once than the plan has workers, as R's
//! multicore and multisession never do. Each body records when it ran (wall
//! clock, the same for every process on the machine); the leader counts the
//! most bodies that overlapped.
//!
//! Only one test here sets a plan: it sets the program-wide plan (so that
//! both of its threads share one pool), which another test would see.

use futurize::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Runs for `ms` milliseconds; when it ran.
fn busy(ms: u64) -> (u64, u64) {
    let start = now_us();
    std::thread::sleep(Duration::from_millis(ms));
    (start, now_us())
}

/// The most intervals that overlap at one instant.
fn most_at_once(intervals: &[(u64, u64)]) -> usize {
    let mut edges: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    // Ends before starts at the same instant: touching is not overlapping.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn futures_and_loops_started_together_never_exceed_the_workers() {
    for (text, p) in [
        (
            "multithread:2",
            futurize::Plan::from(Multithread::workers(2)),
        ),
        ("multiprocess:2", Multiprocess::workers(2).into()),
    ] {
        plan(p);
        // Warm the pool so that process start-up does not hide overlap.
        let warm: Vec<u64> = foreach!(i in 0..4u64 => i %dofuture%).unwrap();
        assert_eq!(warm, vec![0, 1, 2, 3]);

        // Two threads at once: one makes futures, the other runs loops.
        let futures = std::thread::spawn(|| {
            let fs: Vec<_> = (0..4).map(|_| future!(busy(60))).collect();
            value(fs).unwrap()
        });
        let mut intervals: Vec<(u64, u64)> = Vec::new();
        for _ in 0..2 {
            let looped: Vec<(u64, u64)> =
                foreach!(_i in 0..6u32 => busy(40) %dofuture% chunk_size = 1).unwrap();
            intervals.extend(looped);
        }
        intervals.extend(futures.join().unwrap());
        assert_eq!(intervals.len(), 4 + 12);
        let most = most_at_once(&intervals);
        assert!(most <= 2, "{text}: {most} bodies ran at once on 2 workers");
        // The check can fail: work did run side by side.
        assert_eq!(most, 2, "{text}: the bodies never overlapped at all");
    }
    plan(Sequential);
}

#[test]
fn the_overlap_count_counts() {
    assert_eq!(most_at_once(&[(0, 10), (5, 15), (8, 9)]), 3);
    assert_eq!(most_at_once(&[(0, 10), (10, 20)]), 1);
}
