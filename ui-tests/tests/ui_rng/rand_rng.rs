// `rand::rng()` is a per-thread generator: its numbers would depend on the plan.
// Fix: use futurize's `rng()` and add `seed = true`.
use futurize::prelude::*;

fn main() {
    let _draws: Result<Vec<u64>, futurize::Error> =
        foreach!(i in 0..10u64 => rand::rng().next_u64() + i %dofuture%);
}
