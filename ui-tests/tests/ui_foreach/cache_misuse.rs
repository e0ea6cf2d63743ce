// `cache` keeps each element's value: a combining call has none to keep,
// and the option takes `true`, `false` or `"build"` only.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0, 2.0];
    let _sum: Result<f64, futurize::Error> =
        foreach!(x in &xs => x * 2.0 %dofuture% combine = |a, b| a + b, cache = true);
    let _ys: Result<Vec<f64>, futurize::Error> =
        foreach!(x in &xs => x * 2.0 %dofuture% cache = "yes");
}
