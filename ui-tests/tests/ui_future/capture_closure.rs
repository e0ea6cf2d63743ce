// A closure is code, not data: it cannot be captured by a future.
// Fix: make it a `fn` item (callees are referred to directly, never captured).
use futurize::prelude::*;

fn apply(f: impl Fn(i32) -> i32, x: i32) -> i32 {
    f(x)
}

fn main() {
    let add_one = |x: i32| x + 1;
    let _f = future!(apply(add_one, 2));
}
