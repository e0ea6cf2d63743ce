// A body cannot change a variable from outside: it runs once per element, possibly elsewhere.
// Fix: return a value per element and collect them (`let out = foreach!(...)?`).
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0f64, 2.0];
    let mut out: Vec<f64> = Vec::new();
    let _ys: Result<Vec<()>, futurize::Error> = foreach!(x in &xs => out.push(*x) %dofuture%);
    println!("{out:?}");
}
