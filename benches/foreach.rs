//! The map engine: many trivial elements per backend, a fine-grained map on
//! threads next to rayon with the same closure and data, and CPU-bound
//! scaling on two workers.
//!
//! `cargo bench --bench foreach` (numbers go to docs/benchmarks.md);
//! `cargo test --benches` runs each once as a smoke test.

use criterion::{Criterion, criterion_group, criterion_main};
use futurize::prelude::*;
use rayon::prelude::*;
use std::time::Duration;

fn trivial_elements(c: &mut Criterion) {
    let mut group = c.benchmark_group("foreach_1e5_trivial");
    group.sample_size(20);
    let plans: Vec<(&str, futurize::Plan)> = vec![
        ("sequential", Sequential.into()),
        ("multithread_2", Multithread::workers(2).into()),
        ("multiprocess_2", Multiprocess::workers(2).into()),
    ];
    for (name, p) in plans {
        let _g = with_plan(p);
        let warm: Vec<u64> = foreach!(i in 0..10u64 => i %dofuture%).unwrap();
        assert_eq!(warm.len(), 10);
        group.bench_function(name, |b| {
            b.iter(|| {
                let v: Vec<u64> = foreach!(i in 0..100_000u64 => i * 2 %dofuture%).unwrap();
                v
            })
        });
    }
    group.finish();
}

fn fine_grained(c: &mut Criterion) {
    let mut group = c.benchmark_group("fine_grained_1e6");
    group.sample_size(20);
    let xs: Vec<f64> = (0..1_000_000).map(f64::from).collect();
    {
        let _g = with_plan(Multithread::workers(2));
        group.bench_function("futurize_multithread_2", |b| {
            b.iter(|| {
                let v: Vec<f64> = foreach!(x in &xs => (x * 1.5).sqrt() + 1.0 %dofuture%).unwrap();
                v
            })
        });
    }
    {
        let _g = with_plan(Multithread::workers(2));
        group.bench_function("futurize_multithread_2_range", |b| {
            b.iter(|| {
                let v: Vec<f64> =
                    foreach!(i in 0..1_000_000u32 => (f64::from(i) * 1.5).sqrt() + 1.0 %dofuture%)
                        .unwrap();
                v
            })
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    group.bench_function("rayon_2", |b| {
        b.iter(|| {
            pool.install(|| {
                let v: Vec<f64> = xs.par_iter().map(|x| (x * 1.5).sqrt() + 1.0).collect();
                v
            })
        })
    });
    group.bench_function("rayon_2_range", |b| {
        b.iter(|| {
            pool.install(|| {
                let v: Vec<f64> = (0..1_000_000u32)
                    .into_par_iter()
                    .map(|i| (f64::from(i) * 1.5).sqrt() + 1.0)
                    .collect();
                v
            })
        })
    });
    group.bench_function("plain_loop", |b| {
        b.iter(|| {
            let v: Vec<f64> = xs.iter().map(|x| (x * 1.5).sqrt() + 1.0).collect();
            v
        })
    });
    group.finish();
}

/// About 20 ms of arithmetic (measured 2026-12-01 on this machine kind: 8 take 160 ms).
fn busy(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..115_000_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    x
}

fn cpu_bound(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_bound_8x20ms");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let plans: Vec<(&str, futurize::Plan)> = vec![
        ("sequential", Sequential.into()),
        ("multithread_2", Multithread::workers(2).into()),
        ("multiprocess_2", Multiprocess::workers(2).into()),
    ];
    for (name, p) in plans {
        let _g = with_plan(p);
        let _: Vec<u64> = foreach!(i in 0..2u64 => i %dofuture%).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let v: Vec<u64> = foreach!(i in 0..8u64 => busy(i) %dofuture%).unwrap();
                v
            })
        });
    }
    group.finish();
}

fn seeded(c: &mut Criterion) {
    let mut group = c.benchmark_group("seeded_1e5");
    group.sample_size(20);
    {
        let _g = with_plan(Multithread::workers(2));
        group.bench_function("multithread_2/unseeded", |b| {
            b.iter(|| {
                let v: Vec<u64> = foreach!(i in 0..100_000u64 => i * 2 %dofuture%).unwrap();
                v
            })
        });
        group.bench_function("multithread_2/seeded_no_draw", |b| {
            b.iter(|| {
                let v: Vec<u64> =
                    foreach!(i in 0..100_000u64 => i * 2 %dofuture% seed = 1).unwrap();
                v
            })
        });
    }
    let _g = with_plan(Multiprocess::workers(2));
    let _: Vec<u64> = foreach!(i in 0..10u64 => i %dofuture%).unwrap();
    group.bench_function("unseeded", |b| {
        b.iter(|| {
            let v: Vec<u64> = foreach!(i in 0..100_000u64 => i * 2 %dofuture%).unwrap();
            v
        })
    });
    group.bench_function("seeded_no_draw", |b| {
        b.iter(|| {
            let v: Vec<u64> = foreach!(i in 0..100_000u64 => i * 2 %dofuture% seed = 1).unwrap();
            v
        })
    });
    group.bench_function("seeded_one_draw", |b| {
        b.iter(|| {
            let v: Vec<u64> =
                foreach!(i in 0..100_000u64 => rng().next_u64() ^ i %dofuture% seed = 1).unwrap();
            v
        })
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let plans: Vec<(&str, futurize::Plan)> = vec![
        ("multithread_2", Multithread::workers(2).into()),
        ("multiprocess_2", Multiprocess::workers(2).into()),
    ];
    for (name, p) in plans {
        let _g = with_plan(p);
        let _: Vec<u64> = foreach!(i in 0..10u64 => i %dofuture%).unwrap();
        for n in [1_000u64, 10_000, 100_000, 1_000_000] {
            group.bench_function(format!("{name}/{n}/adaptive"), |b| {
                b.iter(|| {
                    let v: Vec<u64> = foreach!(i in 0..n => i * 2 %dofuture%).unwrap();
                    v
                })
            });
            group.bench_function(format!("{name}/{n}/scheduling_1"), |b| {
                b.iter(|| {
                    let v: Vec<u64> =
                        foreach!(i in 0..n => i * 2 %dofuture% scheduling = 1.0).unwrap();
                    v
                })
            });
            group.bench_function(format!("{name}/{n}/chunk_size_100"), |b| {
                b.iter(|| {
                    let v: Vec<u64> =
                        foreach!(i in 0..n => i * 2 %dofuture% chunk_size = 100).unwrap();
                    v
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    trivial_elements,
    fine_grained,
    cpu_bound,
    seeded,
    throughput
);
criterion_main!(benches);
