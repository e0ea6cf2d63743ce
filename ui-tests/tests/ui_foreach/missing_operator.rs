// A foreach! body must be followed by `%dofuture%` or `%do%`.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0, 2.0];
    let _ys: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0);
}
