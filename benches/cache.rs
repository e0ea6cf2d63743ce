//! The cache (`cache = true`): what a fully cached rerun costs, and what
//! keeping values costs a call of real work.
//!
//! `cargo bench --bench cache` (numbers go to docs/benchmarks.md);
//! `cargo test --benches` runs each once, smaller, as a smoke test.

use criterion::Criterion;
use futurize::prelude::*;
use std::time::Duration;

/// Whether this is a measuring run (`cargo bench`), not the smoke test.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A rerun of 1e5 trivial elements whose values are all kept: every value
/// comes from the cache, no worker starts.
fn cached_rerun(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_rerun_1e5_trivial");
    group.sample_size(20);
    let _g = with_plan(Multiprocess::workers(2));
    let n = 100_000u64;
    let first: Vec<u64> = foreach!(i in 0..n => i * 2 %dofuture% cache = true).unwrap();
    assert_eq!(first.len() as u64, n);
    group.bench_function("all_hits_multiprocess_2", |b| {
        b.iter(|| {
            let v: Vec<u64> = foreach!(i in 0..n => i * 2 %dofuture% cache = true).unwrap();
            v
        })
    });
    group.finish();
}

/// 1 ms elements with the cache on (a fresh call each time: every value is
/// computed and kept) against the same call with it off (`cache = false`:
/// `FUTURIZE_CACHE` is set for this whole program).
fn keeping_costs(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_keeping_1ms_elements");
    group.sample_size(10);
    let n: u64 = if measuring() { 10_000 } else { 200 };
    let _g = with_plan(Multiprocess::workers(2));
    let mut run = 0u64;
    group.bench_function("off", |b| {
        b.iter(|| {
            let v: Vec<u64> = foreach!(i in 0..n => {
                std::thread::sleep(Duration::from_millis(1));
                i
            } %dofuture% cache = false)
            .unwrap();
            v
        })
    });
    group.bench_function("on", |b| {
        b.iter(|| {
            // Another capture each time: a new call, nothing found.
            run += 1;
            let v: Vec<u64> = foreach!(i in 0..n => {
                std::thread::sleep(Duration::from_millis(1));
                i + run * 0
            } %dofuture% cache = true)
            .unwrap();
            v
        })
    });
    group.finish();
}

fn main() {
    let dir = std::env::temp_dir().join(format!("futurize-bench-cache-{}", std::process::id()));
    // SAFETY: before anything else runs or reads the environment.
    unsafe { std::env::set_var("FUTURIZE_CACHE", &dir) };
    let mut c = Criterion::default().configure_from_args();
    cached_rerun(&mut c);
    keeping_costs(&mut c);
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
