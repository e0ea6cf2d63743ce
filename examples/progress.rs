//! A progress bar over a long `foreach!`, moved by elements finishing on
//! the workers and by `progress!()` steps inside each element.
//!
//! In a terminal the bar draws itself; elsewhere (a pipe, a batch job's log)
//! force it with `FUTURIZE_PROGRESS=1`, and it prints plain lines, paced for logs:
//!
//! ```text
//! FUTURIZE_PLAN=multiprocess:2 cargo run --example progress
//! FUTURIZE_PROGRESS=1 FUTURIZE_PLAN=multiprocess:2 cargo run --example progress 2>&1 | cat
//! ```

use futurize::prelude::*;
use std::time::Duration;

/// One replicate of a slow simulation, in four steps.
fn replicate(i: u32) -> f64 {
    let mut total = 0.0;
    for step in 0..4u32 {
        std::thread::sleep(Duration::from_millis(25));
        total += f64::from(i * step).sqrt();
        progress!("replicate {i}: step {} of 4", step + 1);
    }
    total
}

fn main() -> Result<(), futurize::Error> {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let results: Vec<f64> =
        foreach!(i in 0..n => replicate(i) %dofuture% progress = true, label = "replicates")?;
    eprintln!("the call has ended");
    let mean = results.iter().sum::<f64>() / f64::from(n);
    println!("{n} replicates on {}, mean {mean:.3}", current_plan()?);
    Ok(())
}
