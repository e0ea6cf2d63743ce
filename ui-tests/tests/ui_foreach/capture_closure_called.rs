// A closure called in the body is captured like any variable, and code cannot travel.
// Fix: make it a `fn` item, or capture the data it uses and write the formula in the body.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0f64, 2.0];
    let model = |x: f64| 2.0 * x + 1.0;
    let _ys: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => model(*x) %dofuture%);
}
