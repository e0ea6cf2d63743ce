// A body runs once per element, possibly elsewhere: it cannot accumulate into an outer
// variable. Use `combine = |a, b| a + b`, or collect the values.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0, 2.0];
    let mut total = 0.0;
    let _ys: Result<Vec<()>, futurize::Error> = foreach!(x in &xs => { total += x; } %dofuture%);
    println!("{total}");
}
