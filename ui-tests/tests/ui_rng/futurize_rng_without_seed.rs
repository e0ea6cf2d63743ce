// Under `#[futurize]`, the seed is an option of the attribute: `#[futurize(seed = true)]`.
use futurize::prelude::*;

#[futurize]
fn simulate(n: usize) -> Vec<u64> {
    (0..n).map(|i| rng().next_u64() + i as u64).collect()
}

fn main() {
    let _ = simulate(3);
}
