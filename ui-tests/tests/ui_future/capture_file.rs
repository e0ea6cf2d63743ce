// An open file belongs to this process: a worker cannot rebuild it from bytes.
// Fix: capture the path and open the file in the body.
use futurize::prelude::*;
use std::io::Read;

fn main() {
    let file = std::fs::File::open("data.csv").unwrap();
    let _f = future!({
        let mut text = String::new();
        (&file).read_to_string(&mut text).unwrap();
        text.len()
    });
}
