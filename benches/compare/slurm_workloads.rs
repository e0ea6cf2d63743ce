//! The Slurm workloads of `benches/compare/run.sh` (`compare_workloads slurm`,
//! with `SLURM_CONF` pointing at a running cluster): the time to the first
//! value of one job, and 50 trivial jobs at once, in futurize and straight
//! through `sbatch` (the scheduler's floor). Each figure is the mean over
//! [`PHASES`] runs started at spread phases of slurmctld's ~1 s scheduling
//! pass, as in benches/slurm.rs; the peers (workloads_py.py `submitit`,
//! workloads_batchtools.R) do the same.

use futurize::prelude::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs per figure; the k-th starts k × 1 s / PHASES after the cluster is idle.
const PHASES: u32 = 5;
/// Jobs submitted at once for the jobs-per-second figure.
const JOBS: u32 = 50;

fn slurm(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .expect("a Slurm command runs");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (untimed) until squeue lists nothing, then for the k-th phase.
fn settle(k: u32) {
    let until = Instant::now() + Duration::from_secs(120);
    while !slurm("squeue", &["-h"]).trim().is_empty() {
        assert!(Instant::now() < until, "jobs still listed after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1) * k / PHASES);
}

/// The mean of `run` over the phases, each run after [`settle`].
fn mean_over_phases(mut run: impl FnMut()) -> f64 {
    let total: f64 = (0..PHASES)
        .map(|k| {
            settle(k);
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .sum();
    total / f64::from(PHASES)
}

/// `sbatch --wrap true` N times, then squeue (every 20 ms) until it lists none.
fn sbatch_floor(n: u32) {
    let ids: Vec<String> = (0..n)
        .map(|_| {
            slurm(
                "sbatch",
                &["--parsable", "-o", "/dev/null", "--wrap", "true"],
            )
            .trim()
            .to_owned()
        })
        .collect();
    let list = ids.join(",");
    while !slurm("squeue", &["-h", "-j", &list]).trim().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Prints the Slurm lines: futurize's and the floor's.
pub(crate) fn run(registry: &Path, report: impl Fn(&str, f64)) {
    report(
        "slurm_first_value_floor_sbatch",
        mean_over_phases(|| sbatch_floor(1)),
    );
    report(
        "slurm_50_jobs_floor_sbatch",
        mean_over_phases(|| sbatch_floor(JOBS)),
    );
    let _g = with_plan(Slurm::jobs().workers(JOBS as usize).registry(registry));
    report(
        "slurm_first_value",
        mean_over_phases(|| assert_eq!(future!(1u32).value().unwrap(), 1)),
    );
    report(
        "slurm_50_jobs",
        mean_over_phases(|| {
            let fs: Vec<Future<u32>> = (0..JOBS).map(|i| future!(i * 2)).collect();
            let values = value(fs).unwrap();
            assert_eq!(values, (0..JOBS).map(|i| i * 2).collect::<Vec<_>>());
        }),
    );
}
