// An `Rc` cannot be sent to a worker, which rebuilds every capture from bytes.
// Fix: capture the value inside (`let n = *shared;`) or an owned, serializable copy.
use futurize::prelude::*;
use std::rc::Rc;

fn main() {
    let shared = Rc::new(5i32);
    let _ys: Result<Vec<i32>, futurize::Error> =
        foreach!(i in 0..3 => shared.pow(2) + i %dofuture%);
}
