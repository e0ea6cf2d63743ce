//! A bootstrap-style simulation study, R's
//! `future_sapply(1:n, function(i) mean(rnorm(1e6)), future.seed = TRUE)`:
//! every replicate draws from its own stream, so the numbers are the same
//! under every plan.
//!
//! ```text
//! cargo run --release --example bootstrap
//! FUTURIZE_PLAN=multithread:2 cargo run --release --example bootstrap
//! FUTURIZE_PLAN=multiprocess:2 cargo run --release --example bootstrap
//! ```

use futurize::prelude::*;
use rand_distr::{Distribution, StandardNormal};

/// The mean of `draws` standard normal numbers from the replicate's stream.
fn mean_of_normals(draws: usize) -> f64 {
    let mut r = rng();
    let total: f64 = (0..draws)
        .map(|_| -> f64 { StandardNormal.sample(&mut r) })
        .sum();
    total / draws as f64
}

fn main() -> Result<(), futurize::Error> {
    let replicates = 16;
    let start = std::time::Instant::now();
    let means: Vec<f64> = foreach!(i in 0..replicates => {
        let _ = i;
        mean_of_normals(1_000_000)
    } %dofuture% seed = 2026)?;
    println!("plan: {}", current_plan()?);
    for (i, m) in means.iter().enumerate().take(4) {
        println!("replicate {i}: {m:+.6}");
    }
    let overall = means.iter().sum::<f64>() / means.len() as f64;
    println!("mean of {replicates} means: {overall:+.8}");
    println!("wall time: {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
