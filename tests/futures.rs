//! The Future API: value, resolved, resolve, cancel, lazy futures, panics,
//! and dropping futures that are still running.

use futurize::prelude::*;
use futurize::{Error, Panic};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn plans() -> Vec<futurize::Plan> {
    vec![Sequential.into(), Multithread::workers(2).into()]
}

#[test]
fn a_panic_is_an_error_with_message_location_and_label_and_the_worker_goes_on() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let n = 7;
        let f = future!(
            {
                if n > 3 {
                    panic!("boom {n}");
                }
                n
            },
            label = "checker"
        );
        match f.value() {
            Err(Error::Panicked {
                panic: Panic {
                    message, location, ..
                },
                label,
                index,
            }) => {
                assert_eq!(message, "boom 7", "{p}");
                assert!(location.unwrap().starts_with("tests/futures.rs:"), "{p}");
                assert_eq!(label.as_deref(), Some("checker"));
                assert_eq!(index, None);
            }
            other => panic!("under {p}: expected Panicked, got {other:?}"),
        }
        // The same workers keep serving.
        let fs: Vec<_> = (0..6).map(|i| future!(i * i)).collect();
        assert_eq!(value(fs).unwrap(), vec![0, 1, 4, 9, 16, 25], "{p}");
    }
}

#[test]
fn the_error_message_reads_as_a_sentence() {
    let f: Future<u8> = future!(panic!("no data"), label = "load");
    let text = f.value().unwrap_err().to_string();
    assert!(
        text.starts_with("future \"load\" panicked at tests/futures.rs:"),
        "{text}"
    );
    assert!(text.ends_with(": no data"), "{text}");
}

static EVALUATED: AtomicUsize = AtomicUsize::new(0);

fn count_evaluation(x: u32) -> u32 {
    EVALUATED.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
fn sequential_evaluates_at_creation_and_lazy_waits_for_first_use() {
    let _g = with_plan(Sequential);
    let before = EVALUATED.load(Ordering::SeqCst);
    let f = future!(count_evaluation(1));
    assert_eq!(
        EVALUATED.load(Ordering::SeqCst),
        before + 1,
        "sequential runs at creation"
    );
    assert!(f.resolved());
    let lazy = future!(count_evaluation(2), lazy = true);
    assert_eq!(
        EVALUATED.load(Ordering::SeqCst),
        before + 1,
        "lazy has not run"
    );
    assert_eq!(lazy.value().unwrap(), 2);
    assert_eq!(EVALUATED.load(Ordering::SeqCst), before + 2);
    assert_eq!(f.value().unwrap(), 1);
}

#[test]
fn value_resolved_and_resolve_on_collections() {
    for p in plans() {
        let _g = with_plan(p);
        let fs: Vec<_> = (1..=4u64).map(|i| future!(i * 100)).collect();
        resolve(&fs);
        assert_eq!(resolved(&fs), vec![true; 4]);
        assert!(resolved(&fs[0]));
        assert_eq!(value(fs).unwrap(), vec![100, 200, 300, 400]);
        let arr = [future!("a".to_string()), future!("b".to_string())];
        assert_eq!(value(arr).unwrap(), ["a".to_string(), "b".to_string()]);
    }
}

#[test]
fn the_first_error_in_order_wins() {
    let _g = with_plan(Multithread::workers(2));
    let fs = vec![
        future!(1),
        future!(panic!("second"), label = "two"),
        future!(panic!("third"), label = "three"),
    ];
    let e = value(fs).unwrap_err();
    assert_eq!(e.label(), Some("two"));
}

#[test]
fn cancel_a_lazy_or_running_future() {
    let lazy = future!(count_evaluation(9), lazy = true);
    assert!(lazy.cancel());
    assert!(lazy.resolved());
    assert!(matches!(lazy.value(), Err(Error::Cancelled { .. })));

    let _g = with_plan(Multithread::workers(1));
    let running = future!(
        {
            std::thread::sleep(Duration::from_millis(200));
            5
        },
        label = "slow"
    );
    assert!(running.cancel());
    match running.value() {
        Err(Error::Cancelled { label }) => assert_eq!(label.as_deref(), Some("slow")),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    // A finished future cannot be cancelled: its value stays.
    let done = future!(6);
    done.resolve();
    assert!(!done.cancel());
    assert_eq!(done.value().unwrap(), 6);
}

#[test]
fn dropping_running_futures_is_safe_and_frees_the_workers() {
    let _g = with_plan(Multithread::workers(2));
    for _ in 0..3 {
        let f = future!({
            std::thread::sleep(Duration::from_millis(50));
            1
        });
        drop(f);
    }
    // Later futures still run on the same pool.
    let fs: Vec<_> = (0..4).map(|i| future!(i + 1)).collect();
    assert_eq!(value(fs).unwrap(), vec![1, 2, 3, 4]);
}

#[test]
fn debug_shows_label_and_state() {
    let f = future!(1, label = "one", lazy = true);
    assert_eq!(
        format!("{f:?}"),
        "Future { label: Some(\"one\"), state: \"lazy\" }"
    );
}

#[test]
fn resolved_never_blocks_a_lazy_future_waits_for_a_free_worker() {
    for p in [
        futurize::Plan::from(Multithread::workers(1)),
        Multiprocess::workers(1).into(),
    ] {
        let _g = with_plan(p.clone());
        let busy = future!({
            std::thread::sleep(std::time::Duration::from_millis(600));
            1u8
        });
        let lazy = future!(2u8, lazy = true);
        let asked = std::time::Instant::now();
        assert!(!lazy.resolved(), "{p}");
        assert!(
            asked.elapsed() < std::time::Duration::from_millis(200),
            "{p}: resolved() took {:?}",
            asked.elapsed()
        );
        // It starts as soon as the worker is free, and resolves.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !lazy.resolved() {
            assert!(std::time::Instant::now() < deadline, "{p}: never resolved");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(busy.resolved(), "{p}: it waited for the busy one");
        assert_eq!((busy.value().unwrap(), lazy.value().unwrap()), (1, 2));
        // A queued future that is cancelled never delivers.
        let busy = future!({
            std::thread::sleep(std::time::Duration::from_millis(300));
            1u8
        });
        let lazy = future!(3u8, lazy = true);
        assert!(!lazy.resolved());
        assert!(lazy.cancel());
        assert!(matches!(lazy.value(), Err(Error::Cancelled { .. })), "{p}");
        assert_eq!(busy.value().unwrap(), 1);
    }
}
