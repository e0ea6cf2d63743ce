// A reference inside a captured tuple points into this process's memory.
// Fix: capture owned data (`(u8, String)`).
use futurize::prelude::*;

fn main() {
    let name = String::from("a");
    let entry: (u8, &str) = (1, &name);
    let _ys: Result<Vec<usize>, futurize::Error> =
        foreach!(i in 0..3usize => entry.1.len() + i %dofuture%);
}
