//! Collecting many futures: `as_completed` (in the order they finish) and
//! `FutureVec` (element by element, R's listenv), under Sequential, worker
//! threads and worker processes.

use futurize::prelude::*;
use futurize::{Error, Panic, Plan};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::alive;

fn plans() -> Vec<Plan> {
    vec![
        Sequential.into(),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ]
}

fn parallel_plans() -> Vec<Plan> {
    plans().into_iter().skip(1).collect()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "futurize-test-{}-collect-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A body that says where it runs, sleeps, and then leaves a mark.
fn announce_nap_and_mark(dir: &Path, ms: u64) -> u32 {
    std::fs::write(dir.join("pid"), std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    std::fs::write(dir.join("finished"), "").unwrap();
    std::process::id()
}

fn announced_pid(dir: &Path) -> u32 {
    let mut pid = 0;
    wait_until("the body announced its pid", || {
        pid = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

fn panic_message(e: &Error) -> &str {
    match e {
        Error::Panicked {
            panic: Panic { message, .. },
            ..
        } => message,
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[test]
fn as_completed_yields_every_index_once_in_the_order_they_finish() {
    // Two workers: the third future starts when the 100 ms one is done, and
    // so still finishes (at ~350 ms) well before the first (600 ms).
    let naps = [600u64, 100, 250];
    for p in plans() {
        let _g = with_plan(p.clone());
        let fs: Vec<Future<u64>> = naps.iter().map(|&ms| future!(nap(ms))).collect();
        let mut done = as_completed(fs);
        assert_eq!(done.len(), 3, "{p}");
        let mut order = Vec::new();
        while let Some((i, v)) = done.next() {
            assert_eq!(v.unwrap(), naps[i], "{p}");
            order.push(i);
            assert_eq!(done.len(), 3 - order.len(), "{p}");
        }
        let expected = if p == Sequential.into() {
            vec![0, 1, 2] // each resolved when created
        } else {
            vec![1, 2, 0]
        };
        assert_eq!(order, expected, "under {p}");
        assert!(done.next().is_none(), "{p}");
    }
}

#[test]
fn as_completed_yields_a_panic_as_an_error_at_its_index() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let fs: Vec<Future<u32>> = (0..4u32)
            .map(|i| {
                future!(
                    {
                        if i == 2 {
                            panic!("element two is bad");
                        }
                        i * 10
                    },
                    label = "tens"
                )
            })
            .collect();
        let seen: BTreeMap<usize, Result<u32, Error>> = as_completed(fs).collect();
        assert_eq!(seen.len(), 4, "{p}: every index once");
        for (i, v) in &seen {
            match (i, v) {
                (2, Err(e)) => {
                    assert_eq!(panic_message(e), "element two is bad", "{p}");
                    assert_eq!(e.label(), Some("tens"), "{p}");
                }
                (i, Ok(v)) => assert_eq!(*v as usize, i * 10, "{p}"),
                (i, Err(e)) => panic!("under {p}: element {i} failed: {e}"),
            }
        }
    }
}

#[test]
fn dropping_as_completed_early_stops_a_worker_process_that_has_not_been_yielded() {
    let _g = with_plan(Multiprocess::workers(2));
    let dir = scratch("drop-processes");
    let fs: Vec<Future<u32>> = vec![future!(0), future!(announce_nap_and_mark(&dir, 1500))];
    let mut done = as_completed(fs);
    let worker = announced_pid(&dir);
    assert_eq!(done.next().map(|(i, v)| (i, v.unwrap())), Some((0, 0)));
    drop(done);
    wait_until("the worker of the given-up future is gone", || {
        !alive(worker)
    });
    wait_until("both workers are free again", || {
        nbr_of_free_workers().unwrap() == 2
    });
    std::thread::sleep(Duration::from_millis(1800));
    assert!(
        !dir.join("finished").exists(),
        "the body was stopped before it left its mark"
    );
    assert_eq!(future!(6 * 7).value().unwrap(), 42);
}

#[test]
fn dropping_as_completed_early_frees_the_thread_of_a_future_not_yielded() {
    let _g = with_plan(Multithread::workers(2));
    let dir = scratch("drop-threads");
    let fs: Vec<Future<u32>> = vec![future!(0), future!(announce_nap_and_mark(&dir, 3000))];
    let mut done = as_completed(fs);
    announced_pid(&dir);
    assert_eq!(done.next().map(|(i, v)| (i, v.unwrap())), Some((0, 0)));
    assert_eq!(nbr_of_free_workers().unwrap(), 1, "the slow body runs");
    drop(done);
    // A started body cannot be interrupted on a thread: a new thread takes
    // its place at once.
    wait_until("a thread takes the given-up body's place", || {
        nbr_of_free_workers().unwrap() == 2
    });
    assert!(!dir.join("finished").exists());
}

#[test]
fn future_vec_get_waits_for_that_element_only() {
    for p in parallel_plans() {
        let _g = with_plan(p.clone());
        let start = Instant::now();
        let mut x = FutureVec::new();
        x.push(future!(nap(1500)));
        x.push(future!(nap(1)));
        assert_eq!(x.len(), 2);
        assert_eq!(*x.get(1).unwrap(), 1, "{p}");
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "under {p}: the fast element took {:?}",
            start.elapsed()
        );
        assert!(x.resolved(1), "{p}");
        assert!(!x.resolved(0), "{p}: the slow one still runs");
        assert_eq!(x[0], 1500, "{p}");
        assert!(x.resolved(0), "{p}");
        assert!(start.elapsed() >= Duration::from_millis(1500), "{p}");
    }
}

#[test]
fn future_vec_reads_each_element_once_and_keeps_it() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let mut x = FutureVec::new();
        assert!(x.is_empty());
        for i in 0..4u64 {
            x.push(future!(format!("element {i}")));
        }
        assert_eq!(x.len(), 4, "{p}");
        let first = x.get(2).unwrap();
        let again = x.get(2).unwrap();
        assert!(std::ptr::eq(first, again), "{p}: the same cached value");
        assert_eq!(x[2], "element 2", "{p}");
        assert_eq!(
            x.values().unwrap(),
            (0..4).map(|i| format!("element {i}")).collect::<Vec<_>>(),
            "{p}"
        );
    }
}

#[test]
fn future_vec_index_panics_with_the_message_of_a_failed_element() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let mut x: FutureVec<u32> = FutureVec::new();
        x.push(future!(1));
        x.push(future!(panic!("no such file"), label = "load"));
        assert_eq!(x[0], 1);
        let e = x.get(1).unwrap_err();
        assert_eq!(panic_message(&e), "no such file", "{p}");
        assert_eq!(x.get(1).unwrap_err(), e, "{p}: the error is kept");
        let payload = catch_unwind(AssertUnwindSafe(|| x[1])).unwrap_err();
        let text = payload
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert_eq!(*text, e.to_string(), "{p}");
        assert!(
            text.starts_with("future \"load\" panicked") && text.ends_with("no such file"),
            "{p}: {text}"
        );
    }
}

#[test]
fn future_vec_values_come_in_order_and_the_first_error_in_order_wins() {
    for p in plans() {
        let _g = with_plan(p.clone());
        // The slowest first: the order is the elements', not the finish's.
        let x: FutureVec<u64> = [300u64, 1, 100]
            .iter()
            .map(|&ms| future!(nap(ms)))
            .collect();
        assert_eq!(x.values().unwrap(), vec![300, 1, 100], "{p}");

        // Element 1 fails after element 3 has failed: element 1's error wins.
        let mut x: FutureVec<u64> = FutureVec::new();
        x.push(future!(nap(1)));
        x.push(future!({
            nap(300);
            panic!("first in order")
        }));
        x.push(future!(nap(1)));
        x.push(future!(panic!("first in time")));
        let e = x.values().unwrap_err();
        assert_eq!(panic_message(&e), "first in order", "{p}");
    }
}

#[test]
fn future_vec_values_after_some_reads_gives_the_read_ones_too() {
    let _g = with_plan(Multithread::workers(2));
    let x: FutureVec<u32> = (0..5u32).map(|i| future!(i + 1)).collect();
    assert_eq!(x[3], 4);
    assert_eq!(*x.get(0).unwrap(), 1);
    assert_eq!(
        format!("{x:?}"),
        "[\"collected\", \"pending\", \"pending\", \"collected\", \"pending\"]"
    );
    assert_eq!(x.values().unwrap(), vec![1, 2, 3, 4, 5]);
}
