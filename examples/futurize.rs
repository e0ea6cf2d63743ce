//! "Futurizing" an existing analysis: one attribute on the function, no
//! rewrite. The output is the same under every plan:
//!
//! ```text
//! cargo run --release --example futurize
//! FUTURIZE_PLAN=multithread:2 cargo run --release --example futurize
//! FUTURIZE_PLAN=multiprocess:2 cargo run --release --example futurize
//! ```

use futurize::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Scenario {
    growth: f64,
    years: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Config {
    start: f64,
    steps_per_year: u32,
}

/// A deliberately slow compound-growth model.
fn project(s: &Scenario, cfg: &Config) -> f64 {
    let steps = s.years * cfg.steps_per_year;
    let rate = s.growth / f64::from(cfg.steps_per_year);
    (0..steps).fold(cfg.start, |value, _| value * (1.0 + rate))
}

/// The analysis as it was written, plus `#[futurize]`.
#[futurize]
fn analyse(scenarios: &[Scenario], cfg: &Config) -> Vec<f64> {
    scenarios.iter().map(|s| project(s, cfg)).collect()
}

fn main() -> Result<(), futurize::Error> {
    let cfg = Config {
        start: 100.0,
        steps_per_year: 2_000_000,
    };
    let scenarios: Vec<Scenario> = (1..=8)
        .map(|i| Scenario {
            growth: 0.01 * f64::from(i),
            years: 10,
        })
        .collect();
    let start = std::time::Instant::now();
    let projections = analyse(&scenarios, &cfg);
    println!("plan: {}", current_plan()?);
    for (s, p) in scenarios.iter().zip(&projections) {
        println!("growth {:.2}: {p:.4}", s.growth);
    }
    println!("wall time: {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
