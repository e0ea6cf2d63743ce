//! Parallel random numbers: identical on every plan, worker count and chunk
//! size; reproducible by seed; usable with rand and rand_distr.

mod common;

use futurize::prelude::*;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

fn configurations() -> Vec<futurize::Plan> {
    vec![
        Sequential.into(),
        Multithread::workers(2).into(),
        Multithread::workers(3).into(),
        Multiprocess::workers(2).into(),
        Multiprocess::workers(3).into(),
    ]
    .into_iter()
    .chain(common::sshd::cluster(&["node1", "node2", "node3"]).map(Into::into))
    .chain(common::slurm::pool().map(Into::into))
    .collect()
}

fn normals(chunking: usize) -> Vec<f64> {
    // chunking: 0 adaptive, 1 one element per chunk, else a fixed size.
    match chunking {
        0 => foreach!(i in 0..1000usize => {
            let mut r = rng();
            let z: f64 = StandardNormal.sample(&mut r);
            z + i as f64 * 0.0
        } %dofuture% seed = 2024)
        .unwrap(),
        1 => foreach!(i in 0..1000usize => {
            let _ = i;
            StandardNormal.sample(&mut rng())
        } %dofuture% seed = 2024, scheduling = f64::INFINITY)
        .unwrap(),
        n => foreach!(i in 0..1000usize => {
            let _ = i;
            StandardNormal.sample(&mut rng())
        } %dofuture% seed = 2024, chunk_size = n)
        .unwrap(),
    }
}

#[test]
fn draws_are_identical_on_every_plan_worker_count_and_chunk_size() {
    let reference = {
        let _g = with_plan(Sequential);
        normals(0)
    };
    assert_eq!(reference.len(), 1000);
    let mean = reference.iter().sum::<f64>() / 1000.0;
    assert!(
        mean.abs() < 0.15,
        "standard normals have mean about 0: {mean}"
    );
    for p in configurations() {
        let _g = with_plan(p.clone());
        for chunking in [0, 1, 7, 128] {
            assert_eq!(
                normals(chunking),
                reference,
                "plan {p}, chunking {chunking}"
            );
        }
    }
}

#[test]
fn each_element_has_its_own_stream() {
    let _g = with_plan(Multithread::workers(2));
    let firsts: Vec<u64> =
        foreach!(i in 0..200u64 => { let _ = i; rng().next_u64() } %dofuture% seed = 5).unwrap();
    let mut distinct = firsts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 200);
    // Element i's stream does not depend on the elements around it.
    let alone: Vec<u64> =
        foreach!(i in 150..151u64 => { let _ = i; rng().next_u64() } %dofuture% seed = 5).unwrap();
    assert_ne!(
        alone[0], firsts[150],
        "a call's elements are numbered from 0"
    );
    let shifted: Vec<u64> =
        foreach!(i in 0..151u64 => { let _ = i; rng().next_u64() } %dofuture% seed = 5).unwrap();
    assert_eq!(shifted[150], firsts[150]);
}

#[test]
fn rand_works_on_the_element_stream() {
    for p in configurations() {
        let _g = with_plan(p.clone());
        let dice: Vec<u8> = foreach!(i in 0..50u32 => { let _ = i; rng().random_range(1..=6u8) } %dofuture% seed = 11).unwrap();
        assert!(dice.iter().all(|d| (1..=6).contains(d)));
        let again: Vec<u8> = foreach!(i in 0..50u32 => { let _ = i; rng().random_range(1..=6u8) } %dofuture% seed = 11).unwrap();
        assert_eq!(dice, again, "{p}");
    }
}

#[test]
fn session_seeds_make_a_program_reproducible_and_calls_disjoint() {
    let run = || {
        futurize::set_seed(99);
        let a: Vec<u64> =
            foreach!(i in 0..5u32 => { let _ = i; rng().next_u64() } %dofuture% seed = true)
                .unwrap();
        let b: Vec<u64> =
            foreach!(i in 0..5u32 => { let _ = i; rng().next_u64() } %dofuture% seed = true)
                .unwrap();
        let f = future!(rng().next_u64(), seed = true).value().unwrap();
        let g = future!(rng().next_u64(), seed = true).value().unwrap();
        (a, b, f, g)
    };
    let first = {
        let _g = with_plan(Multiprocess::workers(2));
        run()
    };
    let second = {
        let _g = with_plan(Multithread::workers(2));
        run()
    };
    assert_eq!(first, second, "same seed, same numbers, whatever the plan");
    let (a, b, f, g) = first;
    assert_ne!(a, b, "consecutive calls take different streams");
    assert_ne!(f, g, "consecutive futures take consecutive streams");
    assert!(!a.contains(&f) && !b.contains(&f));
}

#[test]
fn futures_with_a_fixed_seed_are_reproducible_on_every_plan() {
    let mut seen = Vec::new();
    for p in configurations() {
        let _g = with_plan(p);
        let f = future!(
            {
                let mut r = rng();
                (r.next_u64(), r.random::<f64>())
            },
            seed = 7
        );
        seen.push(f.value().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[futurize(seed = 3)]
fn simulate(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let _ = i;
            rng().random::<f64>()
        })
        .collect()
}

#[test]
fn futurize_passes_the_seed_on() {
    let a = {
        let _g = with_plan(Multiprocess::workers(2));
        simulate(20)
    };
    let b = simulate(20);
    assert_eq!(a, b);
}

#[test]
fn rng_outside_a_seeded_body_panics_with_the_fix() {
    let r = std::panic::catch_unwind(|| rng().next_u64());
    let payload = r.unwrap_err();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(message.contains("add `seed = true`"), "{message}");
}

/// Each element's draws, computed one element at a time from the streams
/// themselves: the reference for the cases below.
fn own_draws(seed: u64, index: u64, n: usize) -> Vec<u64> {
    let mut g = futurize::__private::__stream_generator(seed, index);
    (0..n).map(|_| g.next_u64()).collect()
}

#[test]
fn a_seeded_call_nested_in_an_element_leaves_its_stream_where_it_was() {
    for p in [
        futurize::Plan::from(Sequential),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ] {
        let _g = with_plan(p.clone());
        // Elements draw, run a nested seeded call (in place: %do%), draw
        // again; odd elements do not draw at all.
        let got: Vec<(u64, u64, Vec<u64>)> = foreach!(i in 0..40u64 => {
            if i % 2 == 1 {
                (0, 0, Vec::new())
            } else {
                let first = rng().next_u64();
                let inner: Vec<u64> =
                    foreach!(j in 0..3u64 => rng().next_u64() ^ j %do% seed = 99).unwrap();
                let second = rng().next_u64();
                (first, second, inner)
            }
        } %dofuture% seed = 5)
        .unwrap();
        let inner: Vec<u64> = own_draws(99, 0, 1)
            .into_iter()
            .chain(own_draws(99, 1, 1).into_iter().map(|x| x ^ 1))
            .chain(own_draws(99, 2, 1).into_iter().map(|x| x ^ 2))
            .collect();
        for (i, (first, second, nested)) in got.iter().enumerate() {
            if i % 2 == 1 {
                continue;
            }
            let own = own_draws(5, i as u64, 2);
            assert_eq!((*first, *second), (own[0], own[1]), "plan {p}, element {i}");
            assert_eq!(nested, &inner, "plan {p}, element {i}");
        }
    }
}

#[test]
fn held_and_fresh_handles_draw_each_elements_own_stream_on_every_plan() {
    for p in [
        futurize::Plan::from(Sequential),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ] {
        let _g = with_plan(p.clone());
        // Three draws on a held handle, then two on fresh ones.
        let got: Vec<Vec<u64>> = foreach!(i in 0..300u64 => {
            let _ = i;
            let mut r = rng();
            let mut drawn: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
            drawn.push(rng().next_u64());
            drawn.push(rng().next_u64());
            drawn
        } %dofuture% seed = 31, chunk_size = 7)
        .unwrap();
        for (i, drawn) in got.iter().enumerate() {
            assert_eq!(drawn, &own_draws(31, i as u64, 5), "plan {p}, element {i}");
        }
    }
}

thread_local! {
    /// Where the last panic on this thread that mentions `futurize::rng()`
    /// was raised (tests run side by side on threads of their own).
    static RNG_PANIC_AT: std::cell::RefCell<Option<(String, u32)>> =
        const { std::cell::RefCell::new(None) };
}

#[test]
fn rng_outside_a_seeded_body_panics_at_the_callers_line() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = format!("{info}");
            if message.contains("futurize::rng()")
                && let Some(at) = info.location()
            {
                RNG_PANIC_AT.set(Some((at.file().to_string(), at.line())));
            }
            previous(info)
        }));
    });
    fn helper() -> u64 {
        rng().next_u64()
    }
    let line = line!() - 2;
    let r = std::panic::catch_unwind(helper);
    let payload = r.unwrap_err();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(
        message.contains("call whose body reaches this rng()"),
        "{message}"
    );
    let at = RNG_PANIC_AT.take();
    assert_eq!(at, Some((file!().to_string(), line)));
}
