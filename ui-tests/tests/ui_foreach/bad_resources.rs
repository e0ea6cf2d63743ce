// `resources = (...)` on `foreach!` and `#[futurize]` is checked as on
// `future!`; a whole `Resources` value must be one.
use futurize::prelude::*;

#[futurize(resources = (cpus_per_task = 2, cpus = 2, gpu = 1))]
fn doubles(xs: &[u32]) -> Vec<u32> {
    xs.iter().map(|x| x * 2).collect()
}

fn main() {
    let xs = vec![1u32, 2];
    let _a: Result<Vec<u32>, futurize::Error> =
        foreach!(x in &xs => x + 1 %dofuture% resources = (ntasks = 0, time = "5 weeks"));
    let _b: Result<Vec<u32>, futurize::Error> =
        foreach!(x in &xs => x + 1 %dofuture% resources = (mem = "lots", sbatch = ["qos=low", 5]));
    let _c: Result<Vec<u32>, futurize::Error> =
        foreach!(x in &xs => x + 1 %dofuture% resources = (cpus = 4, cpus = 8, partition = ""));
    let n: usize = 4;
    let _d: Result<Vec<u32>, futurize::Error> =
        foreach!(x in &xs => x + 1 %dofuture% resources = (cpus = n));
    let _e: Result<Vec<u32>, futurize::Error> =
        foreach!(x in &xs => x + 1 %dofuture% resources = n);
    println!("{:?}", doubles(&xs));
}
