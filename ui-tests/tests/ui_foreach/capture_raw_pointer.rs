// A raw pointer is an address in this process, meaningless on a worker.
// Fix: capture the data it points to.
use futurize::prelude::*;

fn main() {
    let data = vec![1u8, 2, 3];
    let base: *const u8 = data.as_ptr();
    let _ys: Result<Vec<bool>, futurize::Error> =
        foreach!(i in 0..3usize => base.wrapping_add(i).is_null() %dofuture%);
}
