// A closure called in the body is captured like any variable, and code cannot travel.
// `foreach!` sees only its own tokens, so it takes the callee `model` for a `fn` item;
// rustc's no-capture check reports it ("`model` captured here"), with no futurize
// function in the message. Fix: make it a `fn` item, or capture the data it uses and
// write the formula in the body.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0f64, 2.0];
    let model = |x: f64| 2.0 * x + 1.0;
    let _ys: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => model(*x) %dofuture%);
}
