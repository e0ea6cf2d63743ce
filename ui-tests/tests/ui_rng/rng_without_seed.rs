// `rng()` draws from the element's own stream, which needs a seed.
// Fix: `%dofuture% seed = true` (or `seed = 42` for a fixed seed).
use futurize::prelude::*;

fn main() {
    let _draws: Result<Vec<u64>, futurize::Error> =
        foreach!(i in 0..10u64 => rng().next_u64() + i %dofuture%);
}
