// `#[futurize]` sees the whole function: a pipeline that calls a closure of the
// function is one error at the closure's name, saying what to write instead.
use futurize::prelude::*;

#[futurize]
fn fit(xs: &[f64]) -> Vec<f64> {
    let a = 2.0;
    let model = |x: f64| a * x + 1.0;
    xs.iter().map(|x| model(*x)).collect()
}

fn main() {
    let _ = fit(&[1.0, 2.0]);
}
