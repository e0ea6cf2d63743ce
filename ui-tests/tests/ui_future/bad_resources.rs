// `resources = (...)` is checked where its values are literals: names
// (batchtools' too, each field once), counts, memory, time, partition and
// sbatch options.
use futurize::prelude::*;

fn main() {
    let a = 1;
    let _f = future!(a + 1, resources = (cpu = 4, mem = "2X", time = "90 parsecs"));
    let _g = future!(a + 1, resources = (cpus = 0, ncpus = 2, memory = "1G", mem = "2G"));
    let _h = future!(a + 1, resources = (cpus = "4", mem = 2048, partition = "gpu short"));
    let _i = future!(a + 1, resources = (sbatch = ["--qos=low", "account=lab", "#SBATCH -N 2"]));
    let _j = future!(a + 1, resources = (nodes = -1, ntasks = 4.5, sbatch = "--qos=low"));
    let _k = future!(a + 1, resources = (mem = "0G", walltime = "", time = "1h"));
    let _l = future!(a + 1, resources = "cpus = 4");
    let _m = future!(a + 1, resources = ());
}
