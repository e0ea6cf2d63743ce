//! The capture walk, case by case, on every plan (the cluster one against
//! the project's private sshd when this machine has one). Every future goes
//! through the codec (encode, decode, run), so each case is also a round trip.

mod common;

use futurize::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `case` under each plan that exists, naming the plan on failure.
fn on_every_plan(case: impl Fn()) {
    let plans: Vec<futurize::Plan> = vec![
        Sequential.into(),
        Multithread::workers(2).into(),
        futurize::Plan::from([
            Multithread::workers(2).into(),
            Multithread::workers(2).into(),
        ]),
        Multiprocess::workers(2).into(),
        futurize::Plan::from([
            Multiprocess::workers(2).into(),
            Multithread::workers(2).into(),
        ]),
    ];
    let mut plans = plans;
    // Workers on other machines, when this machine has an sshd to test with.
    if let Some(c) = common::sshd::cluster(&["node1", "node2", "node3"]) {
        plans.push(c.clone().into());
        plans.push(futurize::Plan::from([
            c.into(),
            Multithread::workers(2).into(),
        ]));
    }
    for p in plans {
        let _g = with_plan(p.clone());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&case));
        if let Err(e) = outcome {
            panic!("under plan {p}: {}", futurize_panic_text(&*e));
        }
    }
}

fn futurize_panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Config {
    scale: f64,
    name: String,
}

const OFFSET: i64 = 100;
static FACTOR: i64 = 3;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
enum Mode {
    Fast,
    Slow,
}

fn double(x: i64) -> i64 {
    2 * x
}

#[test]
fn shadowing_inside_the_body() {
    on_every_plan(|| {
        let x = 5i64;
        let f = future!({
            let x = x + 1; // the outer x is captured, the inner one shadows it
            let y = x * 10;
            y
        });
        assert_eq!(f.value().unwrap(), 60);
    });
}

#[test]
fn nested_blocks_and_closures() {
    on_every_plan(|| {
        let k = 3i64;
        let xs = vec![1i64, 2, 3];
        let f = future!({
            let inner = {
                let k2 = k * 2;
                k2
            };
            xs.iter().map(|v| v * k + inner).sum::<i64>()
        });
        assert_eq!(f.value().unwrap(), (1 + 2 + 3) * 3 + 3 * 6);
    });
}

#[test]
fn for_match_if_let_while_let_patterns() {
    on_every_plan(|| {
        let pairs = vec![(1i64, Some(2i64)), (3, None)];
        let limit = 10i64;
        let fallback = -1i64;
        let f = future!({
            let mut total = 0i64;
            for (a, b) in pairs.iter() {
                total += a;
                match b {
                    Some(v) if *v < limit => total += v,
                    Some(_) => {}
                    None => total += fallback,
                }
                if let Some(v) = b {
                    total += v * 100;
                }
            }
            let mut stack = vec![1i64, 2];
            while let Some(top) = stack.pop() {
                total += top * 1000;
            }
            total
        });
        assert_eq!(f.value().unwrap(), 1 + 2 + 3 - 1 + 200 + 3000);
    });
}

#[test]
fn field_access_and_method_receivers() {
    on_every_plan(|| {
        let cfg = Config {
            scale: 2.5,
            name: "run".into(),
        };
        let xs = vec![1.0f64, 2.0];
        let f = future!(format!(
            "{}:{}",
            cfg.name.to_uppercase(),
            xs.iter().sum::<f64>() * cfg.scale
        ));
        assert_eq!(f.value().unwrap(), "RUN:7.5");
    });
}

#[test]
fn macros_in_the_body_with_implicit_format_captures() {
    on_every_plan(|| {
        let who = String::from("world");
        let n = 3usize;
        let width = 6usize;
        let f = future!({
            println!("hello {who} from a future");
            assert!(n > 0, "n was {n}");
            assert_eq!(n, 3);
            let v = vec![n; 2];
            let w = vec![1, 2, n];
            format!("{who:>width$}|{}|{:?}|{:?}", n, v, w)
        });
        assert_eq!(f.value().unwrap(), " world|3|[3, 3]|[1, 2, 3]");
    });
}

#[test]
fn items_are_not_captured() {
    on_every_plan(|| {
        let x = 4i64;
        let m = Mode::Slow;
        let f = future!({
            let unit = Unit;
            let fast = matches!(m, Mode::Fast);
            let none: Option<i64> = None;
            double(x)
                + OFFSET
                + FACTOR
                + i64::from(fast)
                + none.unwrap_or(0)
                + std::cmp::max(1, 2)
                + i64::MAX.min(0)
                + if unit == Unit { 1 } else { 0 }
        });
        assert_eq!(f.value().unwrap(), 8 + 100 + 3 + 2 + 1);
    });
}

fn sum_refs(xs: &[f64], name: &str, cfg: &Config) -> (f64, usize, f64) {
    // Inside the body, xs: &[f64], name: &str and cfg: &Config, as outside.
    let f = future!({
        let as_slice: &[f64] = xs;
        let as_str: &str = name;
        let as_cfg: &Config = cfg;
        (as_slice.iter().sum::<f64>(), as_str.len(), as_cfg.scale)
    });
    f.value().unwrap()
}

#[test]
fn references_are_captured_as_references() {
    on_every_plan(|| {
        let cfg = Config {
            scale: 0.5,
            name: "c".into(),
        };
        assert_eq!(sum_refs(&[1.0, 2.0], "four", &cfg), (3.0, 4, 0.5));
        let p = std::path::Path::new("/tmp/x");
        let f = future!(p.file_name().map(|s| s.to_string_lossy().into_owned()));
        assert_eq!(f.value().unwrap().as_deref(), Some("x"));
    });
}

struct Accumulator {
    total: i64,
    label: String,
}

impl Serialize for Accumulator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.total, &self.label).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Accumulator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (total, label) = <(i64, String)>::deserialize(d)?;
        Ok(Accumulator { total, label })
    }
}

impl Accumulator {
    fn remote_total(&self, extra: i64) -> Future<String> {
        future!(format!("{}={}", self.label, self.total + extra))
    }

    fn consume(self) -> Future<i64> {
        future!(self.total * 2)
    }
}

#[test]
fn self_in_methods() {
    on_every_plan(|| {
        let acc = Accumulator {
            total: 40,
            label: "sum".into(),
        };
        assert_eq!(acc.remote_total(2).value().unwrap(), "sum=42");
        assert_eq!(acc.consume().value().unwrap(), 80);
    });
}

// A captured generic type needs `'static`, as with `std::thread::spawn`.
fn generic_len<T: Serialize + serde::de::DeserializeOwned + Clone + 'static>(
    items: &[T],
    extra: T,
) -> usize {
    let f = future!({
        let mut v = items.to_vec();
        v.push(extra);
        v.len()
    });
    f.value().unwrap()
}

fn generic_value<T>(x: T) -> T
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    future!(x).value().unwrap()
}

#[test]
fn calls_inside_generic_functions() {
    on_every_plan(|| {
        assert_eq!(generic_len(&[1u8, 2], 3u8), 3);
        assert_eq!(generic_len(&["a".to_string()], "b".to_string()), 2);
        assert_eq!(generic_value(vec![Some(1i32), None]), vec![Some(1), None]);
    });
}

#[test]
fn globals_override_the_walk() {
    on_every_plan(|| {
        let a = 2i64;
        macro_rules! with_binding {
            ($name:ident = $v:expr; $body:expr) => {{
                let $name = $v;
                $body
            }};
        }
        // The walk cannot know that `with_binding!` binds `y`, and would
        // capture it; globals says what to ship.
        let f = future!(with_binding!(y = 5i64; y * a), globals = [a]);
        assert_eq!(f.value().unwrap(), 10);
    });
}

#[test]
fn a_future_works_on_its_own_copy() {
    on_every_plan(|| {
        let mut v = vec![3, 1, 2];
        let name = String::from("x");
        let f = future!({
            v.sort();
            v.push(9);
            let taken: String = name; // consumes its copy
            (v, taken)
        });
        assert_eq!(f.value().unwrap(), (vec![1, 2, 3, 9], "x".to_string()));
        v.push(4); // the caller's variable is untouched and still usable
        assert_eq!(v, vec![3, 1, 2, 4]);
        assert_eq!(name, "x");
    });
}

static DECODED: AtomicUsize = AtomicUsize::new(0);

/// A capture that counts how often it is rebuilt from bytes.
#[derive(Serialize, Debug)]
struct Counted(u32);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODED.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(u32::deserialize(d)?))
    }
}

#[test]
fn every_plan_rebuilds_captures_from_bytes() {
    let c = Counted(7);
    let before = DECODED.load(Ordering::SeqCst);
    // Plans that run bodies in this process, where the counter can be read.
    for p in [
        futurize::Plan::from(Sequential),
        Multithread::workers(2).into(),
    ] {
        let _g = with_plan(p);
        assert_eq!(future!(c.0 + 1).value().unwrap(), 8);
    }
    assert_eq!(DECODED.load(Ordering::SeqCst) - before, 2);
}

#[test]
fn many_captures_are_grouped() {
    on_every_plan(|| {
        let (a1, a2, a3, a4, a5, a6, a7) = (1u64, 2u64, 3u64, 4u64, 5u64, 6u64, 7u64);
        let (b1, b2, b3, b4, b5, b6, b7) = (8u64, 9u64, 10u64, 11u64, 12u64, 13u64, 14u64);
        let f = future!(a1 + a2 + a3 + a4 + a5 + a6 + a7 + b1 + b2 + b3 + b4 + b5 + b6 + b7);
        assert_eq!(f.value().unwrap(), 105);
    });
}
