// `future!` needs an expression to evaluate.
use futurize::prelude::*;

fn main() {
    let _f: Future<i32> = future!();
}
