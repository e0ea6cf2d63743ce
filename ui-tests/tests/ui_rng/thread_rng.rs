// `thread_rng()` (rand 0.8) is refused for the same reason, even with a seed.
use futurize::prelude::*;

fn main() {
    let _draws: Result<Vec<u64>, futurize::Error> =
        foreach!(i in 0..10u64 => thread_rng().next_u64() + i %dofuture% seed = true);
}
