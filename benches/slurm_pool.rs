//! Worker pools on Slurm (issue 25, `slurm-pool:N`) against a private
//! single-node Slurm started by scripts/test-slurm.sh (as benches/slurm.rs
//! does: its own directory, ports and munged, stopped at the end), beside
//! a cluster worker over ssh, `slurm:N` (each future a job) and the
//! scheduler's floor:
//!
//! - round trip on a warm pool worker: `future!(1u32).value()` on
//!   `Slurm::pool().allocations(1)` once its worker runs, next to the same on
//!   a `Cluster` worker over a private sshd (scripts/test-sshd.sh, as
//!   benches/cluster.rs does) and on `Multiprocess::workers(1)`; beside
//!   them a 64-byte ping-pong through each link bare (`srun --jobid=J
//!   --overlap cat` inside the pool's allocation, `ssh node1 cat`), and
//!   what a step in the allocation costs to start (`srun … true`);
//! - first value from an empty pool: `future!(1u32).value()` on
//!   `slurm-pool:1` with an idle time of 0 (so every run starts with no
//!   allocation), next to `sbatch --wrap true` until squeue no longer lists
//!   it, and to the same future on `slurm:20`; the pool's job template
//!   stamps when its holding script starts, which splits the time into the
//!   scheduling pass and what comes after it;
//! - 1000 trivial futures from an empty pool: `future!(i)` for i in 0..1000
//!   on `slurm-pool:4` (idle 2 s), created then `value`d, next to 20 futures
//!   on `slurm:20` (each a job: too slow to run ten times); full runs also
//!   make one run of 1000 futures on `slurm:20` (about 25 s), and one more of
//!   the pool's, each future returning its `SLURM_JOB_ID`, to count the
//!   allocations that ran work.
//!
//! Runs of the Slurm figures start at ten phases of slurmctld's ~1 s
//! scheduling pass once squeue lists nothing (benches/common/slurm_runs.rs),
//! and the summary gives their means; the round trips are medians of
//! criterion's samples.
//!
//! `cargo bench --bench slurm_pool -- --noplot` (about 3 minutes; numbers go
//! to docs/benchmarks.md); at the end it prints a summary table with the
//! issue's targets. `cargo test --bench slurm_pool` (or `cargo test
//! --benches`, with the other benches) runs each once as a smoke test, in
//! about 15 s, and judges no target. Without slurmctld, slurmd and munged (or root) it prints
//! a SKIPPED line and succeeds; without sshd it leaves out the cluster rows.

use criterion::Criterion;
use futurize::prelude::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "common/private_slurm.rs"]
mod private_slurm;
#[path = "../tests/common/process_tree.rs"]
mod process_tree;
#[path = "common/slurm_runs.rs"]
mod slurm_runs;
#[path = "common/private_sshd.rs"]
mod sshd;
use process_tree::wait_for_children_to_end;

use slurm_runs::*;

/// How many futures the pool's throughput run creates.
const MANY: u32 = 1000;

/// How many futures `slurm:20` runs in the same benchmark (each is a job).
const FEW: u32 = 20;

/// The bench's files: the registry, and the pool's stamping template.
struct Dirs {
    registry: PathBuf,
    /// A job template that writes `date +%s%N` to `stamp` before the
    /// holding loop.
    template: PathBuf,
    stamp: PathBuf,
}

impl Dirs {
    fn create() -> Dirs {
        let root = std::env::temp_dir().join(format!("futurize-pool-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let registry = root.join("registry");
        let stamps = root.join("stamps");
        std::fs::create_dir_all(&registry).expect("the registry directory");
        std::fs::create_dir_all(&stamps).expect("the stamp directory");
        let stamp = stamps.join("holding-script-started");
        let template = stamps.join("template.sh");
        std::fs::write(
            &template,
            format!(
                "#!/bin/sh\ndate +%s%N > '{}'\n{{{{command}}}}\n",
                stamp.display()
            ),
        )
        .expect("the template");
        Dirs {
            registry,
            template,
            stamp,
        }
    }

    fn remove(&self) {
        if let Some(root) = self.registry.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// Round trips, by benchmark: the mean of each criterion sample.
static SAMPLES: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

/// Criterion's samples per round-trip benchmark ([`fast_group`]).
const SAMPLE_SIZE: usize = 20;

/// The median of `name`'s samples: the last [`SAMPLE_SIZE`] kept, those
/// of criterion's warm-up before them left out.
fn median_sample(name: &str) -> Option<(Duration, usize)> {
    let all: Vec<Duration> = SAMPLES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .collect();
    let mut v = all[all.len().saturating_sub(SAMPLE_SIZE)..].to_vec();
    v.sort_unstable();
    (!v.is_empty()).then(|| (v[v.len() / 2], v.len()))
}

/// Times `iters` calls of `once` as the benchmark `name`, keeping the
/// sample's mean for the summary.
fn sampled(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &'static str,
    mut once: impl FnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                once();
            }
            let took = started.elapsed();
            SAMPLES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((name, took / iters.max(1) as u32));
            took
        })
    });
}

/// A 64-byte ping-pong through `child`'s stdin and stdout (a `cat` at the
/// far end), timed as the benchmark `name`; ends the child.
fn ping_pong(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &'static str,
    mut child: std::process::Child,
) {
    let mut to = child.stdin.take().expect("a piped stdin");
    let mut from = child.stdout.take().expect("a piped stdout");
    let mut buf = [1u8; 64];
    // The first exchange waits for the link to open.
    to.write_all(&buf).unwrap();
    from.read_exact(&mut buf).unwrap();
    sampled(group, name, || {
        to.write_all(&buf).unwrap();
        from.read_exact(&mut buf).unwrap();
    });
    drop(to);
    let _ = child.wait();
}

/// The running jobs of the pool (all the cluster's `futurize-pool` jobs).
fn running_pool_jobs() -> Vec<String> {
    slurm(
        "squeue",
        &["-h", "-n", "futurize-pool", "-t", "RUNNING", "-o", "%i"],
    )
    .lines()
    .map(|l| l.trim().to_string())
    .filter(|l| !l.is_empty())
    .collect()
}

/// Every `futurize-pool` job Slurm still remembers (MinJobAge=300 s keeps
/// ended ones): how many allocations were asked for so far.
fn pool_jobs_asked() -> usize {
    slurm(
        "squeue",
        &["-h", "-n", "futurize-pool", "-t", "all", "-o", "%i"],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .count()
}

fn fast_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(SAMPLE_SIZE);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group
}

/// Round trips on warm workers: a pool's, a cluster's, a local process's;
/// the bare links beside them.
fn round_trips(c: &mut Criterion, dirs: &Dirs, ssh_command: Option<&str>) {
    let mut group = fast_group(c, "round_trip");
    {
        let _g = with_plan(
            Slurm::pool()
                .allocations(1)
                .idle(Duration::from_secs(600))
                .registry(&dirs.registry),
        );
        // Start the worker before measuring.
        future!(0u32).value().unwrap();
        future!(0u32).value().unwrap();
        sampled(&mut group, "slurm_pool_worker", || {
            assert_eq!(future!(1u32).value().unwrap(), 1);
        });
        // The pool's link bare: a step in its allocation, as its agent is.
        match running_pool_jobs().first() {
            Some(job) => {
                let child = Command::new("srun")
                    .arg(format!("--jobid={job}"))
                    .args(["--overlap", "-N1", "-n1", "--unbuffered", "cat"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("srun runs");
                ping_pong(&mut group, "raw_srun_overlap_cat_64b", child);
                // What opening that link costs: part of a first value.
                sampled(&mut group, "srun_overlap_true", || {
                    let s = Command::new("srun")
                        .arg(format!("--jobid={job}"))
                        .args(["--overlap", "-N1", "-n1", "true"])
                        .stdin(Stdio::null())
                        .status()
                        .expect("srun runs");
                    assert!(s.success());
                });
            }
            None => eprintln!("warning: the pool's allocation is not listed as RUNNING"),
        }
    }
    wait_idle();
    wait_for_children_to_end();
    if let Some(ssh_command) = ssh_command {
        {
            let _g = with_plan(
                Cluster::hosts(["node1"])
                    .ssh_command(ssh_command)
                    .launch_timeout(Duration::from_secs(30)),
            );
            future!(0u32).value().unwrap();
            future!(0u32).value().unwrap();
            sampled(&mut group, "cluster_worker", || {
                assert_eq!(future!(1u32).value().unwrap(), 1);
            });
        }
        wait_for_children_to_end();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{ssh_command} \"$@\""))
            .arg("bench-ssh")
            .args(["-o", "BatchMode=yes", "-T", "node1", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        ping_pong(&mut group, "raw_ssh_cat_64b", child);
    }
    {
        let _g = with_plan(Multiprocess::workers(1));
        future!(0u32).value().unwrap();
        sampled(&mut group, "multiprocess_1", || {
            assert_eq!(future!(1u32).value().unwrap(), 1);
        });
    }
    group.finish();
}

/// The first value from an empty pool, the same future as a job, and the
/// scheduler's floor for one trivial job.
fn first_value(c: &mut Criterion, dirs: &Dirs) {
    let mut group = slow_group(c, "first_value");
    timed(&mut group, "sbatch_wrap_true", || {
        let id = sbatch(&["--wrap", "true"]);
        wait_gone(&[id]);
    });
    {
        let _g = with_plan(
            Slurm::pool()
                .allocations(1)
                .idle(Duration::ZERO)
                .template(&dirs.template)
                .registry(&dirs.registry),
        );
        timed(&mut group, "slurm_pool_1_empty", || {
            let _ = std::fs::remove_file(&dirs.stamp);
            let t0 = since_epoch();
            assert_eq!(future!(1u32).value().unwrap(), 1);
            let took = since_epoch().saturating_sub(t0);
            match stamp_since(&dirs.stamp, t0) {
                Some(pass) => {
                    record("pool_pass", pass);
                    record("pool_after_pass", took.saturating_sub(pass));
                }
                None => eprintln!("warning: the holding script left no stamp"),
            }
        });
    }
    {
        let _g = with_plan(Slurm::jobs().workers(20).registry(&dirs.registry));
        timed(&mut group, "slurm_20_job", || {
            assert_eq!(future!(1u32).value().unwrap(), 1);
        });
    }
    group.finish();
}

/// `n` trivial futures created, then `value`d, on the current plan.
fn many_futures(n: u32) {
    let fs: Vec<Future<u32>> = (0..n).map(|i| future!(i)).collect();
    let values = value(fs).unwrap();
    assert!(values.iter().copied().eq(0..n));
}

/// 1000 futures from an empty pool of 4 allocations; 20 futures as jobs.
fn throughput(c: &mut Criterion, dirs: &Dirs) {
    let mut group = slow_group(c, "many_futures");
    {
        let _g = with_plan(
            Slurm::pool()
                .allocations(4)
                .idle(Duration::from_secs(2))
                .registry(&dirs.registry),
        );
        timed(&mut group, "slurm_pool_4_1000_futures", || {
            let before = pool_jobs_asked();
            many_futures(MANY);
            ALLOCATIONS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(pool_jobs_asked().saturating_sub(before));
        });
    }
    {
        let _g = with_plan(Slurm::jobs().workers(20).registry(&dirs.registry));
        timed(&mut group, "slurm_20_20_futures", || many_futures(FEW));
    }
    group.finish();
}

/// Allocations asked for by each run of the pool's 1000 futures.
static ALLOCATIONS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// One run of [`MANY`] futures on `slurm:20` (full runs only), from an
/// idle cluster: what 20 futures' per-future time stands for.
fn many_jobs(dirs: &Dirs) -> Duration {
    let _g = with_plan(Slurm::jobs().workers(20).registry(&dirs.registry));
    wait_idle();
    let started = Instant::now();
    many_futures(MANY);
    started.elapsed()
}

/// One run of [`MANY`] futures on the pool of the throughput benchmark
/// (full runs only), each returning the job it ran in: how many of the
/// allocations asked for ran any of them.
fn allocations_used(dirs: &Dirs) -> (usize, usize) {
    let _g = with_plan(
        Slurm::pool()
            .allocations(4)
            .idle(Duration::from_secs(2))
            .registry(&dirs.registry),
    );
    wait_idle();
    let before = pool_jobs_asked();
    let fs: Vec<Future<String>> = (0..MANY)
        .map(|_| future!(std::env::var("SLURM_JOB_ID").unwrap_or_default()))
        .collect();
    let mut jobs = value(fs).unwrap();
    let asked = pool_jobs_asked().saturating_sub(before);
    jobs.sort();
    jobs.dedup();
    (asked, jobs.len())
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Whether a target is met; not judged on one unphased run of an
/// unoptimized build (the smoke test).
fn met(yes: bool) -> &'static str {
    if smoke() {
        "(smoke test: not judged)"
    } else if yes {
        "met"
    } else {
        "**not met**"
    }
}

fn summary(as_jobs: Option<Duration>, used: Option<(usize, usize)>) {
    let runs_are = if smoke() {
        "one run each (smoke test)"
    } else {
        "Slurm rows: means of the timed runs, which start at ten phases of the ~1 s \
         scheduling pass; round trips: medians of criterion's samples"
    };
    println!("\nSummary ({runs_are}):");
    println!(
        "| measurement | futurize | beside it | ratio | target | met? |\n|---|---|---|---|---|---|"
    );
    // 1. Round trip.
    let pool = median_sample("slurm_pool_worker");
    let cluster = median_sample("cluster_worker");
    if let Some((p, n)) = pool {
        match cluster {
            Some((cl, m)) => {
                let r = p.as_secs_f64() / cl.as_secs_f64();
                println!(
                    "| round trip, warm worker ({n} / {m} samples) | slurm-pool:1 {} | cluster node1 (ssh) {} \
                     | {r:.2} × | ≤ 2 × | {} |",
                    us(p),
                    us(cl),
                    met(r <= 2.0)
                );
            }
            None => println!(
                "| round trip, warm worker ({n} samples) | slurm-pool:1 {} | (no sshd: no cluster worker) | | ≤ 2 × | |",
                us(p)
            ),
        }
    }
    if let (Some((a, _)), Some((b, _))) = (
        median_sample("raw_srun_overlap_cat_64b"),
        median_sample("raw_ssh_cat_64b"),
    ) {
        println!(
            "| 64 B ping-pong through the bare link | `srun --jobid --overlap cat` {} | `ssh node1 cat` {} | {:.2} × | — | |",
            us(a),
            us(b),
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
    if let Some((t, _)) = median_sample("srun_overlap_true") {
        println!(
            "| a step in the pool's allocation, `srun --jobid --overlap true` | {} | | | | |",
            ms(t)
        );
    }
    if let Some((m, _)) = median_sample("multiprocess_1") {
        println!(
            "| round trip, multiprocess:1, for scale | {} | | | | |",
            us(m)
        );
    }
    // 2. First value from an empty pool.
    let first = mean(&runs("slurm_pool_1_empty"));
    let floor = mean(&runs("sbatch_wrap_true"));
    let pass = mean(&runs("pool_pass"));
    let after = mean(&runs("pool_after_pass"));
    if let (Some(f), Some(fl)) = (first, floor) {
        println!(
            "| first value from an empty pool ({} / {} runs) | slurm-pool:1 {} | `sbatch --wrap true` floor {} \
             | {:.2} × (+{}) | ≤ floor + 300 ms | {} |",
            runs("slurm_pool_1_empty").len(),
            runs("sbatch_wrap_true").len(),
            ms(f),
            ms(fl),
            f.as_secs_f64() / fl.as_secs_f64(),
            ms(f.saturating_sub(fl)),
            met(f <= fl + Duration::from_millis(300))
        );
    }
    if let (Some(p), Some(a)) = (pass, after) {
        println!(
            "| of which: creation → holding script starts (the pass) / → value | {} / {} | | | after the pass ≤ 300 ms | {} |",
            ms(p),
            ms(a),
            met(a <= Duration::from_millis(300))
        );
    }
    if let Some(j) = mean(&runs("slurm_20_job")) {
        println!(
            "| the same future as a job, slurm:20 ({} runs) | {} | | | | |",
            runs("slurm_20_job").len(),
            ms(j)
        );
    }
    // 3. 1000 futures.
    let many = mean(&runs("slurm_pool_4_1000_futures"));
    let few = mean(&runs("slurm_20_20_futures"));
    if let (Some(m), Some(f)) = (many, few) {
        let per_job = f / FEW;
        let as_jobs = per_job * MANY;
        let r = as_jobs.as_secs_f64() / m.as_secs_f64();
        let allocations = ALLOCATIONS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mean_allocations =
            allocations.iter().sum::<usize>() as f64 / allocations.len().max(1) as f64;
        println!(
            "| {MANY} futures from an empty pool ({} / {} runs) | slurm-pool:4 {} ({:.0} futures/s, \
             {mean_allocations:.1} allocations asked) | slurm:20, {FEW} futures {} = {:.1} ms a future \
             ({:.1} futures/s) → {MANY} ≈ {:.1} s | {r:.0} × faster | ≥ 20 × | {} |",
            runs("slurm_pool_4_1000_futures").len(),
            runs("slurm_20_20_futures").len(),
            ms(m),
            f64::from(MANY) / m.as_secs_f64(),
            ms(f),
            per_job.as_secs_f64() * 1e3,
            f64::from(FEW) / f.as_secs_f64(),
            as_jobs.as_secs_f64(),
            met(r >= 20.0)
        );
    }
    if let (Some(t), Some(m)) = (as_jobs, many) {
        let r = t.as_secs_f64() / m.as_secs_f64();
        println!(
            "| {MANY} futures on slurm:20, one run | {} = {:.1} ms a future ({:.1} futures/s) \
             | the pool's {MANY} above {} | {r:.0} × faster | ≥ 20 × | {} |",
            ms(t),
            t.as_secs_f64() * 1e3 / f64::from(MANY),
            f64::from(MANY) / t.as_secs_f64(),
            ms(m),
            met(r >= 20.0)
        );
    }
    if let Some((asked, ran)) = used {
        println!(
            "| one more run of the pool's {MANY} futures, each returning its SLURM_JOB_ID \
             | {asked} allocations asked, {ran} ran futures | | | | |"
        );
    }
}

fn main() {
    let Some(cluster) = private_slurm::start() else {
        return;
    };
    println!("# private Slurm: SLURM_CONF={}", cluster.conf.display());
    let ssh = sshd::start();
    let dirs = Dirs::create();
    let mut c = Criterion::default().configure_from_args();
    let listing = std::env::args().any(|a| a == "--list");
    round_trips(&mut c, &dirs, ssh.as_ref().map(|s| s.ssh_command.as_str()));
    drop(ssh);
    first_value(&mut c, &dirs);
    throughput(&mut c, &dirs);
    let full = !smoke() && !listing;
    let as_jobs = full.then(|| many_jobs(&dirs));
    let used = full.then(|| allocations_used(&dirs));
    c.final_summary();
    summary(as_jobs, used);
    wait_idle();
    dirs.remove();
    drop(cluster);
}
