// A closure called in a future's body is captured like any variable, and code cannot
// travel. `future!` sees only its own tokens, so it takes the callee `model` for a `fn`
// item; rustc's no-capture check reports it ("`model` captured here"), with no futurize
// function in the message. Fix: make it a `fn` item, or capture the data it uses.
use futurize::prelude::*;

fn main() {
    let model = |x: f64| 2.0 * x + 1.0;
    let _f = future!(model(2.0));
}
