//! The Slurm plan (issue 14) against a private single-node Slurm started by
//! the project's own scripts/test-slurm.sh (slurmctld, slurmd and munged on
//! this host, OverSubscribe=FORCE:8, a scheduling pass about once a second),
//! next to what the scheduler itself takes for the same jobs:
//!
//! - time to the first value: `future!(1u32).value()`, from creation to the
//!   value, next to `sbatch --wrap true` from submission until squeue no
//!   longer lists the job (polled every 20 ms);
//! - jobs per second: 20 futures created at once on
//!   `Slurm::jobs().workers(20)`, then `value(futures)`, next to 20
//!   `sbatch --wrap true` until squeue lists none of them;
//! - 1e4 elements through `slurm:4` (one array of at most 4 tasks), next to
//!   `sbatch --array=0-3 --wrap true`;
//! - (full runs only) where the time of one job goes: the future's job
//!   script stamps its start (a template line before the command) and its
//!   body returns the time it ran at, next to a `--wrap` job that stamps
//!   its command; the backend watcher's polling model beside them; the cost
//!   of the watcher's once-a-second `squeue`.
//!
//! slurmctld starts jobs on a pass about once a second, so a run's time
//! depends mostly on where in that second it starts. In full runs the k-th
//! run of every benchmark starts k × 100 ms (mod 1 s) after the cluster is
//! idle, and the summary gives means over those ten phases.
//!
//! `cargo bench --bench slurm -- --noplot` (about 3 minutes; numbers go to
//! docs/benchmarks.md); at the end it prints a summary table (means, jobs/s,
//! ratios to the floor). `cargo test --benches` runs each once as a smoke
//! test (about 10 s). Without slurmctld, slurmd and munged (or without
//! root, which the script needs) it prints a SKIPPED line and succeeds.
//!
//! The cluster is this binary's own (its own directory, ports and munged),
//! so that it neither disturbs nor is disturbed by the tests' cluster, and
//! it is stopped at the end (or at exit).

use criterion::Criterion;
use futurize::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/private_slurm.rs"]
mod private_slurm;
#[path = "common/slurm_runs.rs"]
mod slurm_runs;

use slurm_runs::*;

/// The scheduler's floor: trivial jobs straight through sbatch.
fn floor(c: &mut Criterion) {
    let mut group = slow_group(c, "slurm_floor");
    timed(&mut group, "sbatch_wrap_true", || {
        let id = sbatch(&["--wrap", "true"]);
        wait_gone(&[id]);
    });
    timed(&mut group, "sbatch_20_wrap_true", || {
        let ids: Vec<String> = (0..20).map(|_| sbatch(&["--wrap", "true"])).collect();
        wait_gone(&ids);
    });
    timed(&mut group, "sbatch_array_4_wrap_true", || {
        let id = sbatch(&["--array=0-3", "--wrap", "true"]);
        wait_gone(&[id]);
    });
    group.finish();
}

fn plan(registry: &Path, workers: usize) -> Slurm {
    Slurm::jobs().workers(workers).registry(registry)
}

/// Futures as jobs: the first value, and 20 at once.
fn futures(c: &mut Criterion, registry: &Path) {
    let mut group = slow_group(c, "slurm_jobs");
    {
        let _g = with_plan(plan(registry, 20));
        timed(&mut group, "first_value", || {
            assert_eq!(future!(1u32).value().unwrap(), 1);
        });
        timed(&mut group, "20_futures", || {
            let fs: Vec<Future<u32>> = (0..20u32).map(|i| future!(i * 2)).collect();
            let values = value(fs).unwrap();
            assert_eq!(values, (0..20u32).map(|i| i * 2).collect::<Vec<_>>());
        });
    }
    group.finish();
}

/// 1e4 elements through `slurm:4`: one array of 4 tasks.
fn foreach_1e4(c: &mut Criterion, registry: &Path) {
    let mut group = slow_group(c, "slurm_foreach");
    {
        let _g = with_plan(plan(registry, 4));
        timed(&mut group, "1e4_slurm_4", || {
            let v: Vec<u64> = foreach!(i in 0..10_000u64 => i * 2 %dofuture%).unwrap();
            assert_eq!(v.len(), 10_000);
            assert_eq!(v[9_999], 19_998);
        });
    }
    group.finish();
}

/// When the backend's watcher looks for answer files, from the moment a job
/// is added to an idle watcher: at once, then after pauses of 20 ms growing
/// by half up to 1 s (runtime/src/backend/slurm/watch.rs), not counting the
/// squeue call it makes once a second.
fn watcher_polls() -> Vec<Duration> {
    let mut t = Duration::ZERO;
    let mut pause = Duration::from_millis(20);
    let mut polls = vec![t];
    while t < Duration::from_secs(5) {
        t += pause;
        polls.push(t);
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
    polls
}

/// Where the time of one job goes (full runs only), in `runs` pairs at the
/// ten phases of [`phase`]: a future whose job script stamps its start
/// (a template line before the command) and whose body returns the time it
/// ran at, then a `--wrap` job that stamps the time its command ran.
/// Prints each pair, the means, and what one `squeue` call of the backend's
/// watcher costs.
fn breakdown(registry: &Path, runs: usize) {
    let stamps = registry.join("stamps");
    std::fs::create_dir_all(&stamps).expect("the stamp directory");
    let script_stamp = stamps.join("script");
    let floor_stamp = stamps.join("floor");
    let template = stamps.join("template.sh");
    std::fs::write(
        &template,
        format!(
            "#!/bin/sh\ndate +%s%N > '{}'\n{{{{command}}}}\n",
            script_stamp.display()
        ),
    )
    .expect("the template");
    let wrap = format!("date +%s%N > '{}'", floor_stamp.display());
    let polls = watcher_polls();
    let next_poll = |d: Duration| polls.iter().copied().find(|p| *p >= d).unwrap_or(d);
    let _g = with_plan(plan(registry, 20).template(&template));
    let f = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    // Columns, in ms from creation (ours) or from calling sbatch (floor).
    let mut rows: Vec<[Duration; 9]> = Vec::new();
    let mut last_job = String::new();
    println!(
        "\nWhere the time of one job goes (ms from `future!` / from calling sbatch; phase as in the benchmarks):"
    );
    println!(
        "| phase | future! returns | script starts | body runs | value | watcher's poll after the body (model) \
         | sbatch returns | command runs | squeue done |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for k in 0..runs {
        wait_idle();
        std::thread::sleep(phase(k));
        let _ = std::fs::remove_file(&script_stamp);
        let t0 = since_epoch();
        let fut = future!(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        );
        let created = since_epoch() - t0;
        let body = Duration::from_nanos(fut.value().unwrap()).saturating_sub(t0);
        let valued = since_epoch() - t0;
        let script = stamp_since(&script_stamp, t0).unwrap_or_default();
        // The watcher starts polling once the job is added (as `future!`
        // returns).
        let modelled = created + next_poll(body.saturating_sub(created));

        wait_idle();
        std::thread::sleep(phase(k));
        let _ = std::fs::remove_file(&floor_stamp);
        let t0 = since_epoch();
        let id = sbatch(&["--wrap", &wrap]);
        let submitted = since_epoch() - t0;
        wait_gone(std::slice::from_ref(&id));
        last_job = id;
        let gone = since_epoch() - t0;
        let command = stamp_since(&floor_stamp, t0).unwrap_or_default();
        let row = [
            phase(k),
            created,
            script,
            body,
            valued,
            modelled,
            submitted,
            command,
            gone,
        ];
        println!(
            "| {} |",
            row.iter().map(|d| f(*d)).collect::<Vec<_>>().join(" | ")
        );
        rows.push(row);
    }
    let column = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    let diff = |a: usize, b: usize| {
        rows.iter()
            .map(|r| r[a].saturating_sub(r[b]))
            .collect::<Vec<_>>()
    };
    let m = |v: Vec<Duration>| f(mean(&v).unwrap_or_default());
    println!(
        "| mean | {} | {} | {} | {} | {} | {} | {} | {} |",
        m(column(1)),
        m(column(2)),
        m(column(3)),
        m(column(4)),
        m(column(5)),
        m(column(6)),
        m(column(7)),
        m(column(8)),
    );
    println!(
        "means: submission -> script starts {} ms (floor: -> command runs {} ms); \
         script starts -> body runs {} ms; body runs -> value {} ms \
         (floor: command runs -> squeue done {} ms)",
        m(diff(2, 1)),
        m(diff(7, 6)),
        m(diff(3, 2)),
        m(diff(4, 3)),
        m(diff(8, 7)),
    );
    // What the watcher asks every second, with the jobs of this run still
    // remembered (MinJobAge=300), next to asking only for one job.
    let time_squeue = |args: &[&str]| {
        let mut asks = Vec::new();
        let mut listed = 0;
        for _ in 0..10 {
            let started = Instant::now();
            listed = slurm("squeue", args).lines().count();
            asks.push(started.elapsed());
        }
        (ms(mean(&asks).unwrap_or_default()), listed)
    };
    let (all, listed) = time_squeue(&["--me", "-h", "-r", "-t", "all", "-o", "%i %T"]);
    let (one, _) = time_squeue(&["-h", "-r", "-t", "all", "-j", &last_job, "-o", "%i %T"]);
    println!(
        "one `squeue --me -h -r -t all` (the watcher asks once a second): {all} with {listed} jobs \
         listed; with `-j` one of them: {one}"
    );

    // The watcher's pause is one for all the jobs it waits for and starts
    // again from 20 ms only when an answer comes or nothing is left: with a
    // long job pending and no answer for a while it stays at 1 s, and a
    // short future added then waits for the next of those polls. Each short
    // future below comes 6 s after the last answer (the pause grows from
    // 20 ms to 1 s in 3.3 s).
    let long = future!({
        std::thread::sleep(Duration::from_secs(600));
        0u8
    });
    let mut lags = Vec::new();
    for k in 0..4 {
        std::thread::sleep(Duration::from_secs(6) + phase(2 * k + 1));
        let t0 = since_epoch();
        let fut = future!(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        );
        let body = Duration::from_nanos(fut.value().unwrap()).saturating_sub(t0);
        lags.push((since_epoch() - t0).saturating_sub(body));
    }
    drop(long);
    let lag_alone = mean(&diff(4, 3)).unwrap_or_default();
    println!(
        "body runs -> value with a 10-minute job pending, 6 s after the last answer: mean {} \
         ({}); alone (above): {}",
        ms(mean(&lags).unwrap_or_default()),
        lags.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", "),
        ms(lag_alone)
    );
    wait_idle();
}

fn summary() {
    let runs_are = if smoke() {
        "one run each (smoke test)"
    } else {
        "means of the timed runs, which start at ten phases of the ~1 s scheduling pass"
    };
    println!(
        "\nSummary ({runs_are}; floor = the same work straight through sbatch, \
         squeue polled every 20 ms):"
    );
    println!("| measurement | futurize | scheduler's floor | ratio |\n|---|---|---|---|");
    let row = |what: &str, ours: &str, floor: &str, show: &dyn Fn(Duration) -> String| {
        let (a, b) = (runs(ours), runs(floor));
        if let (Some(ma), Some(mb)) = (mean(&a), mean(&b)) {
            println!(
                "| {what} ({} / {} runs) | {} | {} | {:.2} × |",
                a.len(),
                b.len(),
                show(ma),
                show(mb),
                ma.as_secs_f64() / mb.as_secs_f64()
            );
        }
    };
    let jobs_per_s = |d: Duration| format!("{:.1} jobs/s ({})", 20.0 / d.as_secs_f64(), ms(d));
    row(
        "time to the first value",
        "first_value",
        "sbatch_wrap_true",
        &ms,
    );
    row(
        "20 jobs at once",
        "20_futures",
        "sbatch_20_wrap_true",
        &jobs_per_s,
    );
    row(
        "1e4 elements through slurm:4",
        "1e4_slurm_4",
        "sbatch_array_4_wrap_true",
        &ms,
    );
}

fn main() {
    let Some(cluster) = private_slurm::start() else {
        return;
    };
    println!("# private Slurm: SLURM_CONF={}", cluster.conf.display());
    let registry =
        std::env::temp_dir().join(format!("futurize-bench-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&registry);
    std::fs::create_dir_all(&registry).expect("the registry directory");
    let mut c = Criterion::default().configure_from_args();
    floor(&mut c);
    futures(&mut c, &registry);
    foreach_1e4(&mut c, &registry);
    if !smoke() && !std::env::args().any(|a| a == "--list") {
        breakdown(&registry, 10);
    }
    c.final_summary();
    summary();
    let _ = std::fs::remove_dir_all(&registry);
    drop(cluster);
}
