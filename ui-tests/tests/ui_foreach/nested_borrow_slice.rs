// Borrowed data nested inside a capture (`&[&str]`) cannot be rebuilt on a worker.
// Fix: capture owned values (`Vec<String>`).
use futurize::prelude::*;

fn lengths(words: &[&str]) -> Vec<usize> {
    foreach!(i in 0..words.len() => words[i].len() %dofuture%).unwrap()
}

fn main() {
    let _ = lengths(&["a", "b"]);
}
