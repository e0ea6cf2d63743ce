//! Slurm jobs that adapt to why they failed, on the real test Slurm with
//! memory enforced and a preempting partition (`scripts/test-slurm.sh
//! start-adapt`): more memory after running out of it, a preempted job
//! requeued and answered once, a chunk handed back at its time signal, and
//! no retry when the code itself failed.

mod common;

use common::slurm;
use futurize::prelude::*;
use futurize::{Error, Slurm};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One case at a time: the preemption case takes every CPU.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futurize-adapt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn squeue(args: &[&str]) -> String {
    let out = Command::new("squeue").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A label of this run's own: Slurm remembers the jobs of earlier runs.
fn named(label: &str) -> String {
    format!("{label}-{}", std::process::id())
}

/// `(job id, min memory, state)` of this user's jobs named `futurize-<label>`.
fn jobs_named(label: &str) -> Vec<(String, String, String)> {
    squeue(&[
        "--me",
        "-h",
        "-t",
        "all",
        "-n",
        &format!("futurize-{label}"),
        "-o",
        "%i %m %T",
    ])
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
    })
    .collect()
}

fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cancel(label: &str) {
    let _ = Command::new("scancel")
        .args(["--me", "-n", &format!("futurize-{label}")])
        .output();
}

/// Appends `line` to the file `path` (one short write).
fn mark(path: &str, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn an_element_over_its_memory_succeeds_on_the_retry_with_double_the_memory() {
    let Some(_) = slurm::adaptive() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let registry = scratch("mem");
    let _g = with_plan(Slurm::jobs().registry(&registry));
    // 90 MiB touched, more than 60M and less than 120M: the first job is
    // killed over its memory, the retry asks for twice as much.
    let sums: Vec<u64> = foreach!(i in 0..1u64 => {
        let v = vec![1u8; 90 << 20];
        std::thread::sleep(Duration::from_secs(3));
        std::hint::black_box(&v).iter().map(|&b| u64::from(b)).sum::<u64>() + i
    } %dofuture% resources = (mem = "60M"), retries = 1, label = named("adapt-mem"))
    .unwrap();
    assert_eq!(sums, vec![90 << 20]);
    let mut jobs = jobs_named(&named("adapt-mem"));
    jobs.sort();
    let memories: Vec<&str> = jobs.iter().map(|(_, m, _)| m.as_str()).collect();
    assert_eq!(memories, ["60M", "120M"], "{jobs:?}");
    assert!(
        jobs[0].2.starts_with("FAILED") || jobs[0].2.starts_with("OUT_OF_MEMORY"),
        "{jobs:?}"
    );
    let _ = std::fs::remove_dir_all(&registry);
}

#[test]
fn a_failure_in_the_code_is_returned_at_once_whatever_retries_says() {
    let Some(_) = slurm::adaptive() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let registry = scratch("panic");
    let _g = with_plan(Slurm::jobs().registry(&registry));
    let r: Result<Vec<u64>, Error> = foreach!(i in 0..2u64 => {
        assert!(i != 1, "element one is wrong");
        i
    } %dofuture% retries = 3, chunk_size = 2, label = named("adapt-panic"));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Panicked { .. }), "{e:?}");
    assert!(e.to_string().contains("element one is wrong"), "{e}");
    assert_eq!(
        jobs_named(&named("adapt-panic")).len(),
        1,
        "no job was run again"
    );
    let _ = std::fs::remove_dir_all(&registry);
}

#[test]
fn a_preempted_job_is_requeued_and_its_value_arrives_once() {
    let Some(_) = slurm::adaptive() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let registry = scratch("preempt");
    let runs = registry.join("runs");
    let runs_text = runs.to_str().unwrap().to_string();
    let sinfo = Command::new("sinfo")
        .args(["-h", "-p", "debug", "-o", "%c"])
        .output()
        .unwrap();
    let cpus: u32 = String::from_utf8_lossy(&sinfo.stdout)
        .trim()
        .parse()
        .unwrap();
    let _g = with_plan(Slurm::jobs().registry(&registry));
    // The future holds every CPU of `debug`: a job of `high` preempts it.
    let f = future!(
        {
            let restarts = std::env::var("SLURM_RESTART_COUNT").unwrap_or_else(|_| "0".into());
            mark(&runs_text, &restarts);
            if restarts == "0" {
                std::thread::sleep(Duration::from_secs(60));
            }
            restarts
        },
        resources = (cpus = cpus, partition = "debug"),
        label = named("adapt-preempt")
    );
    wait_for("the future's job to run", Duration::from_secs(30), || {
        lines(&runs).len() == 1
    });
    let job = jobs_named(&named("adapt-preempt"))[0].0.clone();
    let high = Command::new("sbatch")
        .args([
            "--parsable",
            "-p",
            "high",
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        high.status.success(),
        "{}",
        String::from_utf8_lossy(&high.stderr)
    );
    // Requeued under the same id and held back by Slurm's requeue delay:
    // released here rather than waited for.
    wait_for("the job to be requeued", Duration::from_secs(30), || {
        squeue(&["-h", "-j", &job, "-o", "%T %r"]).contains("BeginTime")
    });
    let released = Command::new("scontrol")
        .args(["update", &format!("JobId={job}"), "StartTime=now"])
        .status()
        .unwrap();
    assert!(released.success());
    assert_eq!(
        f.value().unwrap(),
        "1",
        "the value of the run after the requeue"
    );
    assert_eq!(lines(&runs), ["0", "1"]);
    assert_eq!(
        jobs_named(&named("adapt-preempt")).len(),
        1,
        "no new job: the same one ran again"
    );
    let _ = std::fs::remove_dir_all(&registry);
}

#[test]
fn a_chunk_told_its_time_is_up_hands_back_the_rest_to_a_new_job() {
    let Some(_) = slurm::adaptive() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let registry = scratch("handback");
    let marks = registry.join("marks");
    let marks_text = marks.to_str().unwrap().to_string();
    let _g = with_plan(Slurm::jobs().registry(&registry));
    // Sent from here the way Slurm sends it a margin before the time limit
    // (`--signal=B:USR1@60`): SIGUSR1 to the batch shell, which is the job.
    let signaller = std::thread::spawn(move || {
        wait_for("the chunk's first element", Duration::from_secs(60), || {
            !lines(&marks).is_empty()
        });
        let job = jobs_named(&named("adapt-handback"))[0].0.clone();
        let sent = Command::new("scancel")
            .args(["--batch", "--signal=USR1", &job])
            .status()
            .unwrap();
        assert!(sent.success());
        marks
    });
    let values: Vec<u64> = foreach!(i in 0..6u64 => {
        mark(&marks_text, &i.to_string());
        std::thread::sleep(Duration::from_millis(700));
        i * 10
    } %dofuture% chunk_size = 6, label = named("adapt-handback"))
    .unwrap();
    let marks = signaller.join().unwrap();
    cancel(&named("adapt-handback"));
    assert_eq!(values, vec![0, 10, 20, 30, 40, 50]);
    let mut ran = lines(&marks);
    ran.sort();
    assert_eq!(ran, ["0", "1", "2", "3", "4", "5"], "each element ran once");
    let jobs = jobs_named(&named("adapt-handback"));
    assert!(jobs.len() >= 2, "the rest went to a new job: {jobs:?}");
    let _ = std::fs::remove_dir_all(&registry);
}

/// Runs over a minute twice (Slurm's time limits are whole minutes): not in
/// the default run; `.ci/run` runs it (`cargo test --test slurm_adapt --
/// --ignored`).
#[test]
#[ignore = "takes about 3 minutes: run by .ci/run with --ignored"]
fn a_future_over_its_time_limit_succeeds_on_the_retry_with_double_the_time() {
    let Some(_) = slurm::adaptive() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let registry = scratch("time");
    let _g = with_plan(Slurm::jobs().registry(&registry));
    // The first job works past its limit of one minute (Slurm ends it
    // within about a minute and a half: its timer ticks, then KillWait);
    // the retry, given two minutes, finds the first run's mark and finishes
    // at once. The body says how long its job had when it started.
    let mark_file = registry.join("first-run");
    let mark_text = mark_file.to_str().unwrap().to_string();
    let left = future!(
        {
            let at_start = futurize::time_left();
            if !std::path::Path::new(&mark_text).exists() {
                mark(&mark_text, "started");
                std::thread::sleep(Duration::from_secs(400));
            }
            at_start
        },
        resources = (time = "1m"),
        retries = 1,
        label = named("adapt-time")
    )
    .value()
    .unwrap();
    let left = left.expect("a job's body knows its time left");
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(60),
        "{left:?}"
    );
    // The retry's value arrives as its job ends: Slurm may still list it as
    // COMPLETING (its epilog) for a moment, so wait for the state to settle.
    let settled = Instant::now() + Duration::from_secs(60);
    let limits = loop {
        let mut limits: Vec<String> = squeue(&[
            "--me",
            "-h",
            "-t",
            "all",
            "-n",
            &format!("futurize-{}", named("adapt-time")),
            "-o",
            "%i %l %T",
        ])
        .lines()
        .map(str::to_string)
        .collect();
        limits.sort();
        if !limits.iter().any(|l| l.ends_with("COMPLETING")) || Instant::now() > settled {
            break limits;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(limits.len(), 2, "{limits:?}");
    assert!(
        limits[0].contains(" 1:00 ") && limits[0].ends_with("TIMEOUT"),
        "{limits:?}"
    );
    assert!(
        limits[1].contains(" 2:00 ") && limits[1].ends_with("COMPLETED"),
        "{limits:?}"
    );
    let _ = std::fs::remove_dir_all(&registry);
}
