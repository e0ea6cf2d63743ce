// A reference inside a captured `Option` points into this process's memory.
// Fix: capture an `Option<T>` (`.cloned()`).
use futurize::prelude::*;

fn main() {
    let names = vec![String::from("a")];
    let first: Option<&String> = names.first();
    let _f = future!(first.map(|n| n.len()));
}
