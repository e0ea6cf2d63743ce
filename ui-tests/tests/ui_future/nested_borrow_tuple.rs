// A reference inside a captured tuple points into this process's memory.
// Fix: capture owned data (`(u8, String)`).
use futurize::prelude::*;

fn main() {
    let name = String::from("a");
    let entry: (u8, &str) = (1, &name);
    let _f = future!(entry.1.len() + entry.0 as usize);
}
