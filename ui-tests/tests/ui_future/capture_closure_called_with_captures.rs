// A closure with captures of its own, called in a future's body: the same one error
// as without them, at `model`. Fix: capture the data (`a`) and write the formula in
// the body, or make it a `fn` item.
use futurize::prelude::*;

fn main() {
    let a = 2.0;
    let model = |x: f64| a * x + 1.0;
    let _f = future!(model(2.0));
}
