// `globals = [..]` replaces the automatic capture list; a name left out is reported
// where the body uses it.
use futurize::prelude::*;

fn main() {
    let a = 1;
    let b = 2;
    let _f = future!(a + b, globals = [a]);
}
