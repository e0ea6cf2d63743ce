// A reference inside a captured `Option` points into this process's memory.
// Fix: capture an `Option<T>` (`.cloned()`).
use futurize::prelude::*;

fn main() {
    let names = vec![String::from("a")];
    let first: Option<&String> = names.first();
    let _ys: Result<Vec<usize>, futurize::Error> =
        foreach!(i in 0..3usize => first.map_or(i, |n| n.len() + i) %dofuture%);
}
