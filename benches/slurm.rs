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

use criterion::{Criterion, SamplingMode};
use futurize::prelude::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// This bench's private single-node Slurm (scripts/test-slurm.sh with a
/// directory and ports of its own), stopped when dropped or at exit.
mod private_slurm {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Mutex;

    /// The running cluster's directory, for the exit hook.
    static RUNNING: Mutex<Option<PathBuf>> = Mutex::new(None);

    /// A running private Slurm.
    pub(crate) struct Slurm {
        /// Its `slurm.conf` (`SLURM_CONF` is set to it in this process).
        pub conf: PathBuf,
    }

    impl Drop for Slurm {
        fn drop(&mut self) {
            stop();
        }
    }

    fn script() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-slurm.sh")
    }

    /// Cancels the cluster's jobs, ends its daemons (by pid, as the script
    /// does) and removes its directory.
    pub(crate) fn stop() {
        let Some(dir) = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let out = Command::new("bash")
            .arg(script())
            .arg("stop")
            .env("SLURM_TEST_DIR", &dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_file(lock_file(&dir));
            }
            Ok(o) => eprintln!(
                "warning: scripts/test-slurm.sh stop failed for {}: {}{}",
                dir.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("warning: could not run scripts/test-slurm.sh stop: {e}"),
        }
    }

    extern "C" fn stop_at_exit() {
        stop();
    }

    /// The script's lock file beside `dir` (`$S.lock`).
    fn lock_file(dir: &Path) -> PathBuf {
        let mut name = dir.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("a bound address").port()
    }

    /// Starts the cluster and points this process's `SLURM_CONF` at it;
    /// `None` (with a SKIPPED line) when this machine cannot run it.
    ///
    /// Call before any other thread runs (it sets an environment variable).
    pub(crate) fn start() -> Option<Slurm> {
        for tool in [
            "/usr/sbin/slurmctld",
            "/usr/sbin/slurmd",
            "/usr/sbin/munged",
        ] {
            if !Path::new(tool).exists() {
                println!(
                    "SKIPPED: the Slurm benchmarks need {tool}: apt-get install slurm-wlm munge \
                     (.ci/run does)"
                );
                return None;
            }
        }
        // SAFETY: a plain getter.
        if unsafe { libc::geteuid() } != 0 {
            println!(
                "SKIPPED: the Slurm benchmarks need root (scripts/test-slurm.sh runs SlurmUser=root)"
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("futurize-slurm-bench-{}", std::process::id()));
        *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.clone());
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(stop_at_exit) };
        // A free port can be taken between the probe and the daemons' bind:
        // try a few pairs.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let ctld = free_port();
            let mut slurmd = free_port();
            while slurmd == ctld {
                slurmd = free_port();
            }
            let out = Command::new("bash")
                .arg(script())
                .arg("start")
                .env("SLURM_TEST_DIR", &dir)
                .env("SLURM_TEST_CTLD_PORT", ctld.to_string())
                .env("SLURM_TEST_SLURMD_PORT", slurmd.to_string())
                .output()
                .expect("bash runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                let conf = text
                    .lines()
                    .find_map(|l| l.strip_prefix("export SLURM_CONF="))
                    .map(|v| PathBuf::from(v.trim().trim_matches('"')))
                    .expect("the script prints SLURM_CONF");
                // The Slurm commands (the backend's and the floor's) find this
                // cluster through it.
                // SAFETY: called first thing in `main`, before other threads.
                unsafe { std::env::set_var("SLURM_CONF", &conf) };
                return Some(Slurm { conf });
            }
            // Clean up what half started before trying other ports.
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .env("SLURM_TEST_DIR", &dir)
                .output();
            let port_taken = text.contains("in use") || text.contains("bind");
            failures.push(text);
            if !port_taken {
                break;
            }
        }
        panic!(
            "scripts/test-slurm.sh start failed: {}",
            failures.join("\n")
        );
    }
}

/// Whether criterion runs each benchmark once (`cargo test --benches`):
/// without `--bench`, or with `--test`.
fn smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// Every timed run, by benchmark, for the summary table (criterion's own
/// report stays as it is).
static RUNS: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

fn record(name: &'static str, d: Duration) -> Duration {
    RUNS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((name, d));
    d
}

/// All runs of `name` so far, criterion's warm-up run (the first) included.
fn all_runs(name: &str) -> Vec<Duration> {
    RUNS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .collect()
}

/// The timed runs of `name`, less criterion's warm-up run (the first) when
/// there are more.
fn runs(name: &str) -> Vec<Duration> {
    let mut v = all_runs(name);
    if v.len() > 1 {
        v.remove(0);
    }
    v
}

fn mean(v: &[Duration]) -> Option<Duration> {
    (!v.is_empty()).then(|| v.iter().sum::<Duration>() / v.len() as u32)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Runs a Slurm command; its stdout (empty when it failed).
fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sbatch --parsable -o /dev/null <options>`: the job id.
fn sbatch(options: &[&str]) -> String {
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
fn wait_gone(ids: &[String]) {
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
fn wait_idle() {
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
fn phase(k: usize) -> Duration {
    Duration::from_millis((k % 10) as u64 * 100)
}

/// Waits until the cluster is idle, then (full runs) for the phase of the
/// next run of `name`.
fn settle(name: &str) {
    wait_idle();
    if !smoke() {
        std::thread::sleep(phase(all_runs(name).len()));
    }
}

/// Criterion's settings for runs of a second or two: ten samples of one
/// run each (plus one warm-up run).
fn slow_group<'a>(
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
fn timed(
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

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

/// A time written by `date +%s%N` into `path`, from `t0`.
fn stamp_since(path: &Path, t0: Duration) -> Option<Duration> {
    let ns: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Some(Duration::from_nanos(ns).saturating_sub(t0))
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
