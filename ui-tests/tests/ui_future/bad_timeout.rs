// `timeout` takes a humane duration such as "10m" (or a `Duration`), and
// `progress` belongs to `foreach!`.
use futurize::prelude::*;

fn main() {
    let a = 1;
    let _f = future!(a + 1, timeout = "ten minutes");
    let _g = future!(a + 1, timeout = "5m", progress = true);
    let _h = future!(a + 1, stdout = 0);
}
