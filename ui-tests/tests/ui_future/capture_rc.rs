// An `Rc` cannot be sent to a worker, which rebuilds every capture from bytes.
// Fix: capture the value inside (`let n = *shared;`) or an owned, serializable copy.
use futurize::prelude::*;
use std::rc::Rc;

fn main() {
    let shared = Rc::new(5);
    let _f = future!(*shared + 1);
}
