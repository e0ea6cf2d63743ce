// A captured value is shared by every element: consuming it fails; clone it instead.
use futurize::prelude::*;

fn consume(v: Vec<String>) -> usize {
    v.len()
}

fn main() {
    let names = vec!["a".to_string()];
    let _ys: Result<Vec<usize>, futurize::Error> = foreach!(i in 0..3usize => consume(names) + i %dofuture%);
}
