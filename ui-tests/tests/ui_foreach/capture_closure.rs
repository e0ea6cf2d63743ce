// A closure is code, not data: a worker cannot rebuild it from bytes.
// Fix: call a `fn` item in the body (callees are referred to directly, never captured).
use futurize::prelude::*;

fn apply(f: impl Fn(i32) -> i32, x: i32) -> i32 {
    f(x)
}

fn main() {
    let add_one = |x: i32| x + 1;
    let _ys: Result<Vec<i32>, futurize::Error> =
        foreach!(i in 0..3 => apply(add_one, i) %dofuture%);
}
