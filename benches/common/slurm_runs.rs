//! Timed runs against a private Slurm, phased against slurmctld's ~1 s
//! scheduling pass, with a record of every run for the summary tables.
//!
//! Shared by benches/slurm.rs and benches/slurm_pool.rs (`#[path]`).

use criterion::{Criterion, SamplingMode};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether criterion runs each benchmark once (`cargo test --benches`):
/// without `--bench`, or with `--test`.
pub(crate) fn smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// Every timed run, by benchmark, for the summary table (criterion's own
/// report stays as it is).
static RUNS: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

pub(crate) fn record(name: &'static str, d: Duration) -> Duration {
    RUNS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((name, d));
    d
}

/// All runs of `name` so far, criterion's warm-up run (the first) included.
pub(crate) fn all_runs(name: &str) -> Vec<Duration> {
    RUNS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .collect()
}

/// The timed runs of `name`, less criterion's warm-up run (the first) when
/// there are more.
pub(crate) fn runs(name: &str) -> Vec<Duration> {
    let mut v = all_runs(name);
    if v.len() > 1 {
        v.remove(0);
    }
    v
}

pub(crate) fn mean(v: &[Duration]) -> Option<Duration> {
    (!v.is_empty()).then(|| v.iter().sum::<Duration>() / v.len() as u32)
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Runs a Slurm command; its stdout (empty when it failed).
pub(crate) fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sbatch --parsable -o /dev/null <options>`: the job id.
pub(crate) fn sbatch(options: &[&str]) -> String {
    let mut args = vec!["--parsable", "-o", "/dev/null"];
    args.extend_from_slice(options);
    let out = Command::new("sbatch")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("sbatch runs");
    let said = String::from_utf8_lossy(&out.stdout);
    let id = said
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        out.status.success() && !id.is_empty(),
        "sbatch {args:?} failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    id
}

/// Polls `squeue -h -j IDS` every 20 ms until it lists none of them (a
/// finished job leaves squeue's default view once it has completed).
pub(crate) fn wait_gone(ids: &[String]) {
    let list = ids.join(",");
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        if slurm("squeue", &["-h", "-j", &list]).trim().is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "jobs {list} still listed after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (untimed, up to 60 s) until the cluster runs nothing, so that one
/// run's jobs do not share the node with the next one's.
pub(crate) fn wait_idle() {
    let until = Instant::now() + Duration::from_secs(60);
    while !slurm("squeue", &["-h"]).trim().is_empty() {
        if Instant::now() > until {
            eprintln!(
                "warning: jobs still listed after 60 s: {}",
                slurm("squeue", &[])
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The phases a full run starts its timed runs at: the k-th run of every
/// benchmark waits `k × 100 ms` modulo 1 s once the cluster is idle, so that
/// the ten runs after criterion's warm-up cover slurmctld's ~1 s scheduling
/// pass evenly and their mean is the expected time over a random start.
/// Without it every run would start at the same phase (right after the
/// previous run's jobs left squeue), and measure nearly a whole pass, or
/// nearly none of it, depending on what ran before.
pub(crate) fn phase(k: usize) -> Duration {
    Duration::from_millis((k % 10) as u64 * 100)
}

/// Waits until the cluster is idle, then (full runs) for the phase of the
/// next run of `name`.
pub(crate) fn settle(name: &str) {
    wait_idle();
    if !smoke() {
        std::thread::sleep(phase(all_runs(name).len()));
    }
}

/// Criterion's settings for runs of a second or two: ten samples of one
/// run each (plus one warm-up run).
pub(crate) fn slow_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group
}

/// Times `run` as the benchmark `name` (criterion's `iter_custom`), each
/// run after [`settle`].
pub(crate) fn timed(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &'static str,
    mut run: impl FnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                settle(name);
                let started = Instant::now();
                run();
                total += record(name, started.elapsed());
            }
            total
        })
    });
}

/// The time since the epoch, to compare with `date +%s%N` stamps.
pub(crate) fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
}

/// A time written by `date +%s%N` into `path`, from `t0`.
pub(crate) fn stamp_since(path: &std::path::Path, t0: Duration) -> Option<Duration> {
    let ns: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Some(Duration::from_nanos(ns).saturating_sub(t0))
}
