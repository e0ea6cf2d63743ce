// A raw pointer is an address in this process, meaningless on a worker.
// Fix: capture the data it points to.
use futurize::prelude::*;

fn main() {
    let data = [1u8, 2, 3];
    let first: *const u8 = data.as_ptr();
    let _f = future!(first.is_null());
}
