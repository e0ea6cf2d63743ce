//! The `foreach` loop of the R world, `foreach(i = 1:n) %dofuture% { mean(1:i) }`:
//!
//! ```text
//! cargo run --release --example foreach
//! FUTURIZE_PLAN=multiprocess:2 cargo run --release --example foreach
//! ```
//!
//! Each element is made slow on purpose (20 ms), so the plan shows in the wall time.

use futurize::prelude::*;
use std::time::{Duration, Instant};

fn mean_of_one_to(i: u32) -> f64 {
    std::thread::sleep(Duration::from_millis(20));
    (1..=i).map(f64::from).sum::<f64>() / f64::from(i)
}

fn main() -> Result<(), futurize::Error> {
    let n = 40;
    let start = Instant::now();
    let means: Vec<f64> = foreach!(i in 1..=n => mean_of_one_to(i) %dofuture%)?;
    let elapsed = start.elapsed();
    let total: f64 = foreach!(i in 1..=n => mean_of_one_to(i) %dofuture% combine = |a, b| a + b)?;
    println!("plan: {}", current_plan()?);
    println!("means[0..5]: {:?}", &means[..5]);
    println!("sum of means: {total}");
    println!(
        "wall time of the first loop: {:.2} s",
        elapsed.as_secs_f64()
    );
    Ok(())
}
