// Loop items that are borrowed slices (`&[f64]` from `chunks`) cannot be rebuilt on a worker.
// Fix: collect each chunk into an owned `Vec<f64>`.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0f64; 16];
    let cs: Vec<&[f64]> = xs.chunks(4).collect();
    let _ys: Result<Vec<f64>, futurize::Error> =
        foreach!(c in &cs => c.iter().sum::<f64>() %dofuture%);
}
