// Borrowed data nested inside a capture (`&[&str]`) cannot be rebuilt on a worker.
// Fix: capture owned values (`Vec<String>`).
use futurize::prelude::*;

fn count(words: &[&str]) -> usize {
    future!(words.len()).value().unwrap()
}

fn main() {
    let _ = count(&["a", "b"]);
}
