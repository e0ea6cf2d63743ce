// The same for a single future. Fix: `future!(..., seed = true)`.
use futurize::prelude::*;

fn main() {
    let _f = future!(futurize::rng().next_u64());
}
