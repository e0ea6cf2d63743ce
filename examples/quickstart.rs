//! The first program to run: two futures over the two halves of 1..=10.
//!
//! ```text
//! cargo run --release --example quickstart
//! FUTURIZE_PLAN=multithread:2 cargo run --release --example quickstart
//! ```
//!
//! Each element takes 100 ms, so the sum takes about 1 s sequentially and
//! about 0.5 s with two workers. The code does not change: the plan does.

use futurize::prelude::*;
use std::time::{Duration, Instant};

/// Adds up `xs` slowly: each element takes 100 ms.
fn slow_sum(xs: &[u64]) -> u64 {
    let mut total = 0;
    for x in xs {
        std::thread::sleep(Duration::from_millis(100));
        total += x;
    }
    total
}

fn main() -> Result<(), futurize::Error> {
    let xs: Vec<u64> = (1..=10).collect();
    let (low, high) = xs.split_at(xs.len() / 2);

    let start = Instant::now();
    let a = future!(slow_sum(low), label = "lower half");
    let b = future!(slow_sum(high), label = "upper half");
    let total = a.value()? + b.value()?;
    let elapsed = start.elapsed();

    println!("plan: {}", current_plan()?);
    println!("value: {total}");
    println!("wall time: {:.2} s", elapsed.as_secs_f64());
    Ok(())
}
