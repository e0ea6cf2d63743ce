//! Random numbers: draws through `rng()` against a Xoshiro256++ held in a
//! local variable (the same generator, seeded once), and seeded maps whose
//! elements draw once against the same map without a seed. A drawn `u64`
//! takes 9 bytes on the wire where `i * 2` takes 1 to 5, so the maps also
//! have an unseeded body whose values are as wide (`unseeded_wide`).
//!
//! `cargo bench --bench rng` (numbers go to docs/benchmarks.md);
//! `cargo test --benches` runs each once as a smoke test.

use criterion::{Criterion, criterion_group, criterion_main};
use futurize::prelude::*;
use rand::RngExt;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Draws per measured future.
const DRAWS: u64 = 1_000_000;

/// Sums `DRAWS` draws of `random_range(0..1000)` from `r`.
fn sum_draws(r: &mut impl rand_core::Rng) -> u64 {
    (0..DRAWS).map(|_| r.random_range(0..1000u64)).sum()
}

fn draws(c: &mut Criterion) {
    let mut group = c.benchmark_group("rng_draws_1e6");
    group.sample_size(20);
    let _g = with_plan(Sequential);
    // Each draws inside a seeded future, so the three differ only in the
    // generator they draw from.
    group.bench_function("local_xoshiro256pp", |b| {
        b.iter(|| {
            future!(
                {
                    let mut local = Xoshiro256PlusPlus::seed_from_u64(rng().next_u64());
                    sum_draws(&mut local)
                },
                seed = 1
            )
            .value()
            .unwrap()
        })
    });
    group.bench_function("rng_held", |b| {
        b.iter(|| {
            future!(
                {
                    let mut r = rng();
                    sum_draws(&mut r)
                },
                seed = 1
            )
            .value()
            .unwrap()
        })
    });
    group.bench_function("rng_per_draw", |b| {
        b.iter(|| {
            future!(
                (0..DRAWS)
                    .map(|_| rng().random_range(0..1000u64))
                    .sum::<u64>(),
                seed = 1
            )
            .value()
            .unwrap()
        })
    });
    group.finish();
}

fn seeded_maps(c: &mut Criterion) {
    let mut group = c.benchmark_group("seeded_2e5");
    group.sample_size(20);
    let plans: Vec<(&str, futurize::Plan)> = vec![
        ("sequential", Sequential.into()),
        ("multiprocess_2", Multiprocess::workers(2).into()),
    ];
    for (name, p) in plans {
        let _g = with_plan(p);
        let _: Vec<u64> = foreach!(i in 0..10u64 => i %dofuture%).unwrap();
        group.bench_function(format!("{name}/unseeded"), |b| {
            b.iter(|| {
                let v: Vec<u64> = foreach!(i in 0..200_000u64 => i * 2 %dofuture%).unwrap();
                v
            })
        });
        group.bench_function(format!("{name}/unseeded_wide"), |b| {
            b.iter(|| {
                let v: Vec<u64> =
                    foreach!(i in 0..200_000u64 => i * 2 | 1 << 63 %dofuture%).unwrap();
                v
            })
        });
        group.bench_function(format!("{name}/seeded_no_draw"), |b| {
            b.iter(|| {
                let v: Vec<u64> =
                    foreach!(i in 0..200_000u64 => i * 2 %dofuture% seed = 1).unwrap();
                v
            })
        });
        group.bench_function(format!("{name}/seeded_one_draw"), |b| {
            b.iter(|| {
                let v: Vec<u64> =
                    foreach!(i in 0..200_000u64 => rng().next_u64() ^ i %dofuture% seed = 1)
                        .unwrap();
                v
            })
        });
    }
    group.finish();
}

criterion_group!(benches, draws, seeded_maps);
criterion_main!(benches);
