// A closure with captures of its own, called in the body: the body captures the
// closure, and code cannot travel. `foreach!` sees only its own tokens, so it takes
// `model` for a `fn` item; rustc's no-capture check reports it ("`model` captured here").
// Fix: capture the data (`a`) and write the formula in the body, or make it a `fn` item.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0f64, 2.0];
    let a = 2.0;
    let model = |x: f64| a * x + 1.0;
    let _ys: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => model(*x) %dofuture%);
}
