//! `foreach!`: the same results as a plain loop on every plan and option;
//! error policies; stopping; capture bytes shipped once per worker; no
//! copies on threads.

mod common;

use futurize::prelude::*;
use futurize::{Error, Panic};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn plans() -> Vec<futurize::Plan> {
    vec![
        Sequential.into(),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ]
    .into_iter()
    .chain(common::sshd::cluster(&["node1", "node2", "node3"]).map(Into::into))
    .chain(common::slurm::pool().map(Into::into))
    .collect()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Config {
    scale: f64,
    offset: i64,
}

fn mean_up_to(i: u32) -> f64 {
    (1..=i).map(f64::from).sum::<f64>() / f64::from(i)
}

#[test]
fn results_equal_a_plain_loop_for_every_plan_and_option() {
    let xs: Vec<u32> = (1..=57).collect();
    let cfg = Config {
        scale: 0.5,
        offset: 3,
    };
    let k = 2u32;
    let expected: Vec<f64> = xs
        .iter()
        .map(|&x| mean_up_to(x * k) * cfg.scale + cfg.offset as f64)
        .collect();
    for p in plans() {
        let _g = with_plan(p.clone());
        let runs: Vec<(&str, Vec<f64>)> = vec![
            ("default", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture%).unwrap()),
            ("chunk_size", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture% chunk_size = 5).unwrap()),
            ("scheduling 1", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture% scheduling = 1.0).unwrap()),
            ("scheduling inf", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture% scheduling = f64::INFINITY).unwrap()),
            ("reverse", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture% ordering = "reverse", chunk_size = 4).unwrap()),
            ("random", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture% ordering = "random").unwrap()),
            ("label+globals", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %dofuture% label = "means", globals = [k, cfg]).unwrap()),
            ("%do%", foreach!(x in &xs => mean_up_to(x * k) * cfg.scale + cfg.offset as f64 %do%).unwrap()),
        ];
        for (name, got) in runs {
            assert_eq!(got, expected, "{name} under {p}");
        }
        let total: f64 =
            foreach!(x in &xs => mean_up_to(*x) %dofuture% combine = |a, b| a + b, chunk_size = 7)
                .unwrap();
        let plain: f64 = xs.iter().map(|&x| mean_up_to(x)).sum();
        assert!((total - plain).abs() < 1e-9, "combine under {p}");
        // Combining is in element order: string concatenation is not commutative.
        let word: String = foreach!(c in "abcdefghij".chars() => c.to_string() %dofuture% combine = |a: String, b: String| a + &b, chunk_size = 3).unwrap();
        assert_eq!(word, "abcdefghij", "ordered combine under {p}");
    }
}

#[test]
fn zipped_bindings_patterns_and_other_collections() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let a = vec![1i64, 2, 3, 4];
        let b = vec!["w".to_string(), "xx".into(), "yyy".into()];
        let zipped: Vec<String> =
            foreach!(x in &a, s in &b => format!("{x}{s}") %dofuture%).unwrap();
        assert_eq!(zipped, ["1w", "2xx", "3yyy"], "{p}");
        let pairs = vec![(1u8, 'a'), (2, 'b')];
        let set: std::collections::BTreeSet<String> =
            foreach!((n, c) in pairs.clone() => format!("{c}{n}") %dofuture%).unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["a1", "b2"], "{p}");
        let empty: Vec<u8> = foreach!(x in Vec::<u8>::new() => x %dofuture%).unwrap();
        assert!(empty.is_empty());
    }
}

fn checked(i: usize) -> usize {
    if i % 10 == 3 {
        panic!("element {i} is bad");
    }
    i * 2
}

#[test]
fn error_policies_stop_remove_and_pass() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let e = foreach!(i in 0..40usize => checked(i) %dofuture% label = "check", chunk_size = 4)
            .map(|v: Vec<usize>| v)
            .unwrap_err();
        match e {
            Error::Panicked {
                panic: Panic {
                    message, location, ..
                },
                index,
                label,
            } => {
                assert_eq!(index, Some(3), "{p}");
                assert_eq!(message, "element 3 is bad", "{p}");
                assert_eq!(label.as_deref(), Some("check"));
                assert!(location.unwrap().starts_with("tests/foreach.rs:"));
            }
            other => panic!("under {p}: expected Panicked, got {other:?}"),
        }
        let kept: Vec<usize> =
            foreach!(i in 0..40usize => checked(i) %dofuture% errors = "remove").unwrap();
        let plain: Vec<usize> = (0..40).filter(|i| i % 10 != 3).map(|i| i * 2).collect();
        assert_eq!(kept, plain, "{p}");
        let each: Vec<Result<usize, Error>> =
            foreach!(i in 0..40usize => checked(i) %dofuture% errors = "pass").unwrap();
        assert_eq!(each.len(), 40);
        for (i, r) in each.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i * 2),
                Err(Error::Panicked { index, .. }) => assert_eq!((*index, i % 10), (Some(i), 3)),
                Err(other) => panic!("{other:?}"),
            }
        }
        let sum: usize = foreach!(i in 0..40usize => checked(i) %dofuture% errors = "remove", combine = |a, b| a + b).unwrap();
        assert_eq!(sum, plain.iter().sum::<usize>(), "{p}");
        // The workers are still usable.
        let ok: Vec<usize> = foreach!(i in 0..5usize => i %dofuture%).unwrap();
        assert_eq!(ok, vec![0, 1, 2, 3, 4]);
    }
}

#[test]
fn nothing_to_combine_is_an_error() {
    let r: Result<u32, Error> =
        foreach!(x in Vec::<u32>::new() => x %dofuture% combine = |a, b| a + b, label = "none");
    assert!(matches!(r, Err(Error::NothingToCombine { label: Some(l) }) if l == "none"));
}

fn slow_unless_first(i: usize) -> usize {
    if i == 0 {
        std::thread::sleep(Duration::from_millis(50));
        panic!("first element fails");
    }
    std::thread::sleep(Duration::from_secs(3));
    i
}

#[test]
fn the_first_failure_stops_what_runs_and_what_has_not_started() {
    for p in [
        futurize::Plan::from(Multiprocess::workers(2)),
        Multithread::workers(2).into(),
    ] {
        let _g = with_plan(p.clone());
        let started = Instant::now();
        let r: Result<Vec<usize>, Error> =
            foreach!(i in 0..20usize => slow_unless_first(i) %dofuture% chunk_size = 1);
        let took = started.elapsed();
        assert!(
            matches!(r, Err(Error::Panicked { index: Some(0), .. })),
            "{p}: {r:?}"
        );
        // 19 elements of 3 s on 2 workers would take ~30 s; stopping leaves at most
        // the element already running on the other thread.
        assert!(took < Duration::from_secs(15), "{p}: took {took:?}");
        let again: Vec<usize> = foreach!(i in 0..3usize => i + 1 %dofuture%).unwrap();
        assert_eq!(again, vec![1, 2, 3], "{p}");
    }
}

#[test]
fn a_worker_dying_inside_a_chunk_names_the_element() {
    let _g = with_plan(Multiprocess::workers(2));
    let r: Result<Vec<usize>, Error> = foreach!(i in 0..8usize => {
        if i == 5 {
            std::process::exit(7);
        }
        i
    } %dofuture% chunk_size = 1, label = "exits");
    match r {
        Err(Error::WorkerDied {
            cause,
            index,
            label,
            ..
        }) => {
            assert_eq!(cause, "exit status 7");
            assert_eq!(index, Some(5));
            assert_eq!(label.as_deref(), Some("exits"));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let again: Vec<usize> = foreach!(i in 0..4usize => i %dofuture%).unwrap();
    assert_eq!(again, vec![0, 1, 2, 3]);
}

#[test]
fn a_large_capture_is_sent_once_per_worker_not_once_per_chunk() {
    let _g = with_plan(Multiprocess::workers(2));
    let big = vec![1u8; 50 << 20];
    let before = futurize::__private::__bytes_sent_to_workers();
    let lens: Vec<usize> =
        foreach!(i in 0..1000usize => big.len() + i %dofuture% chunk_size = 1).unwrap();
    let sent = futurize::__private::__bytes_sent_to_workers() - before;
    assert_eq!(lens.len(), 1000);
    assert_eq!(lens[999], (50 << 20) + 999);
    assert!(
        sent <= 2 * (50 << 20) + (1 << 20),
        "sent {sent} bytes for a 50 MB capture"
    );
    assert!(
        sent >= 50 << 20,
        "the capture must reach at least one worker: {sent}"
    );
}

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

/// Counts how often it is turned into bytes.
#[derive(Deserialize, Debug)]
struct Watched(Vec<u64>);

impl Serialize for Watched {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        self.0.serialize(s)
    }
}

#[test]
fn multithread_borrows_captures_and_elements_without_copying() {
    let _g = with_plan(Multithread::workers(2));
    let watched = Watched((0..1000).collect());
    let items: Vec<Watched> = (0..50).map(|i| Watched(vec![i])).collect();
    let before = SERIALIZED.load(Ordering::SeqCst);
    let sums: Vec<u64> =
        foreach!(w in &items => w.0[0] + watched.0.iter().sum::<u64>() %dofuture%).unwrap();
    assert_eq!(
        SERIALIZED.load(Ordering::SeqCst),
        before,
        "nothing was serialized"
    );
    assert_eq!(sums[49], 49 + 499_500);
    // The body saw the caller's very data: same address.
    let address = &watched.0[0] as *const u64 as usize;
    let seen: Vec<usize> =
        foreach!(i in 0..2usize => &watched.0[i] as *const u64 as usize %dofuture%).unwrap();
    assert_eq!(seen[0], address);
}

fn fails_slowly_at_3_quickly_at_13(i: usize) -> usize {
    match i {
        3 => {
            std::thread::sleep(Duration::from_millis(400));
            panic!("slow failure");
        }
        13 => panic!("quick failure"),
        _ => i,
    }
}

#[test]
fn stop_reports_the_lowest_failed_index_even_when_a_later_one_fails_first() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let r: Result<Vec<usize>, Error> = foreach!(i in 0..40usize => fails_slowly_at_3_quickly_at_13(i) %dofuture% chunk_size = 4);
        match r {
            Err(Error::Panicked { index, panic, .. }) => {
                assert_eq!(
                    (index, panic.message.as_str()),
                    (Some(3), "slow failure"),
                    "{p}"
                );
            }
            other => panic!("under {p}: expected Panicked, got {other:?}"),
        }
    }
}
