// A `&mut` capture cannot be written back from a worker. Fix: capture the value and
// return the new one.
use futurize::prelude::*;

fn fill(buffer: &mut Vec<u8>) {
    let _f = future!(buffer.push(1));
}

fn main() {
    fill(&mut Vec::new());
}
