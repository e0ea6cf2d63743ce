// A `&mut` capture cannot be written back from a worker.
use futurize::prelude::*;

fn fill(buffer: &mut Vec<u8>) -> usize {
    let n: Vec<usize> = foreach!(i in 0..2usize => buffer.len() + i %dofuture%).unwrap();
    n[0]
}

fn main() {
    fill(&mut Vec::new());
}
