// Options are checked by name.
use futurize::prelude::*;

fn main() {
    let _f = future!(1 + 1, lable = "sum");
}
