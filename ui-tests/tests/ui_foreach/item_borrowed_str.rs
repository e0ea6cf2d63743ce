// A loop item that holds borrowed data (`&str` here) cannot be rebuilt on a worker.
// Fix: iterate over owned data (`Vec<String>`).
use futurize::prelude::*;

fn main() {
    let names = vec!["a", "bb"];
    let _ys: Result<Vec<usize>, futurize::Error> = foreach!(n in &names => n.len() %dofuture%);
}
