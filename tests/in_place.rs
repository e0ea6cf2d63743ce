//! `foreach!` over indexed elements (slices, ranges, vectors of plain
//! values) in this process: values written in place, every element once,
//! every value dropped once, on every in-process plan and error policy.

use futurize::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

fn in_process_plans() -> Vec<(&'static str, futurize::Plan)> {
    vec![
        ("sequential", Sequential.into()),
        ("multithread:2", Multithread::workers(2).into()),
        ("multithread:3", Multithread::workers(3).into()),
    ]
}

#[test]
fn indexed_shapes_equal_a_plain_loop() {
    let xs: Vec<f64> = (0..10_007).map(|i| i as f64 * 0.5).collect();
    let names: Vec<String> = (0..517).map(|i| format!("n{i}")).collect();
    for (name, plan) in in_process_plans() {
        let _g = with_plan(plan);
        let got: Vec<f64> = foreach!(x in &xs => x * 2.0 + 1.0 %dofuture%).unwrap();
        let want: Vec<f64> = xs.iter().map(|x| x * 2.0 + 1.0).collect();
        assert_eq!(got, want, "{name}: slice");

        let got: Vec<i64> = foreach!(i in -5_000i64..5_000 => i * 3 %dofuture%).unwrap();
        assert_eq!(
            got,
            (-5_000i64..5_000).map(|i| i * 3).collect::<Vec<_>>(),
            "{name}"
        );

        let got: Vec<i16> = foreach!(b in i8::MIN..=i8::MAX => i16::from(b) %dofuture%).unwrap();
        assert_eq!(got.len(), 256, "{name}: full inclusive range");
        assert_eq!((got[0], got[255]), (-128, 127), "{name}");

        let owned = xs.clone();
        let got: Vec<f64> = foreach!(x in owned => x - 1.0 %dofuture%).unwrap();
        assert_eq!(
            got,
            xs.iter().map(|x| x - 1.0).collect::<Vec<_>>(),
            "{name}: Vec<f64>"
        );

        // A slice zipped with a shorter range: as long as the shorter.
        let got: Vec<String> =
            foreach!(n in &names, i in 0..300usize => format!("{n}:{i}") %dofuture%).unwrap();
        assert_eq!(got.len(), 300, "{name}: zip");
        assert_eq!(got[299], "n299:299", "{name}");

        // Owned strings are pulled from their iterator, not indexed.
        let got: Vec<usize> = foreach!(s in names.clone() => s.len() %dofuture%).unwrap();
        assert_eq!(
            got,
            names.iter().map(String::len).collect::<Vec<_>>(),
            "{name}"
        );

        let empty: Vec<u8> = Vec::new();
        let got: Vec<u8> = foreach!(x in &empty => *x %dofuture%).unwrap();
        assert!(got.is_empty(), "{name}: empty");
    }
}

/// How many `Counted` values are alive.
static ALIVE: AtomicUsize = AtomicUsize::new(0);

/// A value that counts how many of its kind are alive.
struct Counted;

impl Counted {
    fn new() -> Counted {
        ALIVE.fetch_add(1, Ordering::SeqCst);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

// `Counted` never travels (these plans run in this process), but the
// engine's bounds ask values to be serializable.
impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Counted, D::Error> {
        unreachable!("in-process plans do not decode values")
    }
}

#[test]
fn failures_drop_every_value_once_under_each_policy() {
    let alive = &ALIVE;
    let xs: Vec<u32> = (0..5_000).collect();
    for (name, plan) in in_process_plans() {
        let _g = with_plan(plan);
        let r: Result<Vec<Counted>, _> = foreach!(x in &xs => {
            assert!(*x % 1_000 != 777, "element {x} fails");
            Counted::new()
        } %dofuture%);
        match r {
            Err(futurize::Error::Panicked { index, .. }) => {
                assert_eq!(index, Some(777), "{name}: the lowest failure")
            }
            other => panic!("{name}: {:?}", other.map(|v| v.len())),
        }
        assert_eq!(alive.load(Ordering::SeqCst), 0, "{name}: stop dropped all");

        let kept: Vec<Counted> = foreach!(x in &xs => {
            assert!(*x % 1_000 != 777, "element {x} fails");
            Counted::new()
        } %dofuture% errors = "remove")
        .unwrap();
        assert_eq!(kept.len(), 4_995, "{name}: remove");
        assert_eq!(alive.load(Ordering::SeqCst), 4_995, "{name}");
        drop(kept);
        assert_eq!(
            alive.load(Ordering::SeqCst),
            0,
            "{name}: remove dropped all"
        );

        let each: Vec<Result<Counted, futurize::Error>> = foreach!(x in &xs => {
            assert!(*x % 1_000 != 777, "element {x} fails");
            Counted::new()
        } %dofuture% errors = "pass")
        .unwrap();
        assert_eq!(each.len(), 5_000, "{name}: pass");
        let failed: Vec<usize> = (0..each.len()).filter(|i| each[*i].is_err()).collect();
        assert_eq!(failed, vec![777, 1_777, 2_777, 3_777, 4_777], "{name}");
        assert_eq!(alive.load(Ordering::SeqCst), 4_995, "{name}");
        drop(each);
        assert_eq!(alive.load(Ordering::SeqCst), 0, "{name}: pass dropped all");

        // All succeed: the values come straight from the slots.
        let all: Vec<Counted> = foreach!(x in &xs => Counted::new() %dofuture%).unwrap();
        assert_eq!(all.len(), 5_000, "{name}");
        drop(all);
        assert_eq!(
            alive.load(Ordering::SeqCst),
            0,
            "{name}: in place dropped all"
        );
    }
}

#[test]
fn every_element_runs_once_across_threads() {
    let _g = with_plan(Multithread::workers(3));
    let runs: Vec<AtomicUsize> = (0..50_000).map(|_| AtomicUsize::new(0)).collect();
    let runs = &runs;
    let got: Vec<usize> = foreach!(i in 0..50_000usize => {
        runs[i].fetch_add(1, Ordering::Relaxed);
        i
    } %dofuture%)
    .unwrap();
    assert_eq!(got, (0..50_000).collect::<Vec<_>>());
    assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
}

thread_local! {
    /// Set on the test's own thread: bodies say whether they ran there.
    static ON_CALLER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[test]
fn a_tiny_call_runs_on_the_calling_thread_once_its_site_is_known() {
    let _g = with_plan(Multithread::workers(2));
    ON_CALLER.with(|c| c.set(true));
    let mut elsewhere = Vec::new();
    for _ in 0..6 {
        let here: Vec<bool> =
            foreach!(i in 0..16u32 => ON_CALLER.with(|c| c.get()) %dofuture%).unwrap();
        elsewhere.push(here.iter().filter(|h| !**h).count());
    }
    // The first call does not know what an element costs; the later ones do
    // and do not wake a pool thread for microseconds of work. (One of them
    // may still, if this thread was descheduled while it measured.)
    let alone = elsewhere[1..].iter().filter(|n| **n == 0).count();
    assert!(alone >= 4, "elements run elsewhere per call: {elsewhere:?}");
}

#[test]
fn slow_elements_still_use_every_thread() {
    let _g = with_plan(Multithread::workers(2));
    for round in 0..2 {
        // The first element is cheap: what the call remembers must still
        // say that its elements take time.
        let ids: Vec<String> = foreach!(i in 0..8u32 => {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            format!("{:?}", std::thread::current().id())
        } %dofuture%)
        .unwrap();
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "round {round}: {ids:?}");
    }
}
