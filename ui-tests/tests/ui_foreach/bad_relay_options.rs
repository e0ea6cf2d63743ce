// The options of issue 6 are checked: `timeout` takes a humane duration,
// `retries` a whole number, `progress` and `stdout` a bool.
use futurize::prelude::*;

fn main() {
    let xs = vec![1.0, 2.0];
    let _a: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% timeout = "10 parsecs");
    let _b: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% timeout = "10");
    let _c: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% timeout = 600);
    let _d: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% retries = "twice");
    let _e: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% progress = 1);
    let _f: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% stdout = "no");
    let _g: Result<Vec<f64>, futurize::Error> = foreach!(x in &xs => x * 2.0 %dofuture% timeout = "0ms");
}
