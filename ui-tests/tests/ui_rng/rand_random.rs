// `rand::random()` uses the per-thread generator too.
use futurize::prelude::*;

fn main() {
    let _f = future!(rand::random::<f64>());
}
