// Option values are checked: `lazy` takes a bool, `label` a string, `globals` a list of names.
use futurize::prelude::*;

fn main() {
    let a = 1;
    let _f = future!(a + 1, lazy = "yes");
    let _g = future!(a + 1, label = 5);
    let _h = future!(a + 1, globals = a);
}
