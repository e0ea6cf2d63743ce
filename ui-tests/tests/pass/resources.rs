// `resources = (...)` on `future!`, `foreach!` and `#[futurize]`: literals
// (batchtools' names too), expressions for single values, and a whole
// `Resources` value.
use futurize::Resources;
use futurize::prelude::*;

#[futurize(resources = (cpus = 1, mem = "100M", time = "10 min"), label = "doubles")]
fn doubles(xs: &[u32]) -> Vec<u32> {
    xs.iter().map(|x| x * 2).collect()
}

#[futurize(resources = Resources::new().cpus(1))]
fn total(xs: &[u32]) -> u32 {
    xs.iter().map(|x| x + 1).sum()
}

// Slurm's own requests compile everywhere; they run on a Slurm plan.
#[allow(dead_code)]
fn on_slurm(account: &str, extra: Vec<&str>) -> (Future<i32>, Result<Vec<u32>, futurize::Error>) {
    let f = future!(
        1 + 1,
        resources = (
            cpus = 4,
            mem = "2G",
            time = "1h30m",
            partition = "short",
            gpus = 1,
            nodes = 1,
            ntasks = 5,
            sbatch = ["--qos=low", account],
        )
    );
    let xs = vec![1u32, 2];
    let ys = foreach!(x in &xs => x + 1 %dofuture% resources = (
        sbatch = extra,
        walltime = "2 h",
        memory = "1.5GB",
        cpus_per_task = 2,
    ));
    (f, ys)
}

fn main() {
    assert_eq!(doubles(&[1, 2]), vec![2, 4]);
    assert_eq!(total(&[1, 2]), 5);
    let (n, mem) = (1u32, String::from("200M"));
    let f = future!(40 + 2, resources = (ncpus = n, mem = mem.clone(), time = "1h"));
    assert_eq!(f.value().unwrap(), 42);
    let whole = Resources::new().cpus(1).mem("1G");
    let g = future!(1, resources = whole.clone());
    assert_eq!(g.value().unwrap(), 1);
    let xs = vec![1u32, 2, 3];
    let ys: Vec<u32> = foreach!(x in &xs => x + 1 %dofuture% resources = whole).unwrap();
    assert_eq!(ys, vec![2, 3, 4]);
    let zs: Vec<u32> = foreach!(x in &xs => x * 3 %dofuture% resources = (cpus = 1)).unwrap();
    assert_eq!(zs, vec![3, 6, 9]);
}
