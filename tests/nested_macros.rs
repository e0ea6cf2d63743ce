//! Nested parallelism: a `foreach!` or `future!` inside the body of a
//! `future!`, a `foreach!` or a `#[futurize]` pipeline, run on a worker under
//! the next level of the plan. What the nested call uses from outside is
//! captured by the outer macro and travels with it.

use futurize::Plan;
use futurize::prelude::*;

/// Worker processes on the first level, threads inside each worker below.
fn processes_then_threads() -> Plan {
    Plan::from([
        Multiprocess::workers(2).into(),
        Multithread::workers(2).into(),
    ])
}

#[test]
fn a_future_runs_a_foreach_on_its_worker() {
    let _g = with_plan(processes_then_threads());
    let f = future!({
        let pids: Vec<u32> = futurize::foreach!(_i in 0..12u32 => {
            std::process::id()
        } %dofuture% chunk_size = 1)
        .unwrap();
        (
            std::process::id(),
            futurize::nbr_of_workers().unwrap(),
            pids,
        )
    });
    let (worker, workers_below, pids) = f.value().unwrap();
    assert_ne!(
        worker,
        std::process::id(),
        "the future runs in a worker process"
    );
    assert_eq!(
        workers_below, 2,
        "the worker sees the next level of the plan"
    );
    assert_eq!(pids.len(), 12);
    assert!(
        pids.iter().all(|&p| p == worker),
        "the nested foreach! runs on threads of the worker: {pids:?}"
    );
}

#[test]
fn a_variable_used_only_in_the_nested_body_is_captured() {
    for plan in [Plan::from(Sequential), processes_then_threads()] {
        let _g = with_plan(plan.clone());
        let k = 3;
        let f = future!(foreach!(i in 0..4 => i * k %dofuture%).unwrap());
        let values: Vec<i32> = f.value().unwrap();
        assert_eq!(values, [0, 3, 6, 9], "under plan {plan}");
    }
}

#[test]
fn option_values_of_the_nested_call_are_captured() {
    let _g = with_plan(processes_then_threads());
    let (n, chunk, tag) = (5u64, 2usize, String::from("inner"));
    let f = ::futurize::future!(
        futurize::foreach!(i in 0..n => i * i %dofuture% chunk_size = chunk, label = tag.clone())
            .unwrap(),
        label = "outer"
    );
    let values: Vec<u64> = f.value().unwrap();
    assert_eq!(values, [0, 1, 4, 9, 16]);
    let total = future!(foreach!(x in 1..=n => x %dofuture% combine = |a, b| a + b).unwrap());
    assert_eq!(total.value().unwrap(), 15);
}

#[test]
fn a_foreach_body_creates_futures() {
    let _g = with_plan(processes_then_threads());
    let k = 10u32;
    let pairs: Vec<(u32, u32, u32)> = foreach!(x in 1..=4u32 => {
        let f = future!((x * k, std::process::id()), label = "per element");
        let (value, pid) = f.value().unwrap();
        (value, pid, std::process::id())
    } %dofuture%)
    .unwrap();
    let values: Vec<u32> = pairs.iter().map(|p| p.0).collect();
    assert_eq!(values, [10, 20, 30, 40]);
    for &(_, future_pid, element_pid) in &pairs {
        assert_ne!(element_pid, std::process::id(), "elements run in workers");
        assert_eq!(
            future_pid, element_pid,
            "the futures run on threads of the worker"
        );
    }
}

#[test]
fn a_foreach_body_runs_a_foreach() {
    let _g = with_plan(processes_then_threads());
    let offset = 100u32;
    let sums: Vec<u32> = foreach!((a, b) in [(1u32, 10u32), (3, 20)] => {
        let terms: Vec<u32> = ::futurize::foreach!(c in 0..a => c + b + offset %dofuture%).unwrap();
        terms.into_iter().sum::<u32>()
    } %dofuture%)
    .unwrap();
    assert_eq!(sums, [110, 3 * 120 + 3]);
}

#[futurize]
fn multiples(ns: &[u32], k: u32) -> Vec<u32> {
    ns.iter()
        .map(|n| {
            let terms: Vec<u32> = foreach!(i in 0..*n => i * k %dofuture%).unwrap();
            terms.into_iter().sum::<u32>()
        })
        .collect()
}

#[futurize]
fn shifted(ns: &[u32], k: u32) -> Vec<u32> {
    ns.iter().map(|n| future!(n + k).value().unwrap()).collect()
}

#[test]
fn futurize_pipelines_nest_foreach_and_future() {
    for plan in [Plan::from(Sequential), processes_then_threads()] {
        let _g = with_plan(plan.clone());
        assert_eq!(
            multiples(&[1, 2, 3, 4], 3),
            [0, 3, 9, 18],
            "under plan {plan}"
        );
        assert_eq!(shifted(&[1, 2, 3], 5), [6, 7, 8], "under plan {plan}");
    }
}
