// Option values are checked: `errors` takes "stop", "remove" or "pass"; sizes are positive;
// `chunk_size` and `scheduling` cannot both be given.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0, 2.0];
    let _a: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% errors = "ignore");
    let _b: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% chunk_size = 0);
    let _c: Result<Vec<f64>, futurize::Error> =
        foreach!(x in &xs => x * 2.0 %dofuture% chunk_size = 2, scheduling = 1.0);
    let _d: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% ordering = 3);
}
