// A function value passed in (`f: impl Fn(..)`) is a variable too: a pipeline
// that calls it, by name (`map(f)`) or in a closure, is one error at it.
use futurize::prelude::*;

#[futurize]
fn apply(xs: &[f64], f: impl Fn(f64) -> f64) -> Vec<f64> {
    xs.iter().copied().map(f).collect()
}

fn main() {
    let _ = apply(&[1.0, 2.0], |x| x + 1.0);
}
