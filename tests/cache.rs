//! `cache = true` and `FUTURIZE_CACHE`: values kept as their chunks finish,
//! found again by a rerun, which runs only what had not finished. Each case
//! runs the program as a child process (the cache's directory is read from
//! the environment once per process), the way a user reruns a program.

mod common;

use futurize::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futurize-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// This test binary as the program of `scenario`, with the cache in `cache`
/// and the bodies' marks written to `marks`.
fn program(scenario: &str, cache: &Path, marks: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_scenario",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_SCENARIO", scenario)
        .env("FUTURIZE_CACHE", cache)
        .env("MARKS", marks)
        .env_remove("FUTURIZE_PLAN");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// Runs `scenario` to its end: what it printed between its markers, and its
/// stderr.
fn run(scenario: &str, cache: &Path, marks: &Path, env: &[(&str, &str)]) -> (String, String) {
    let out = program(scenario, cache, marks, env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{scenario} failed:\n{stdout}\n{stderr}"
    );
    let start = stdout.find("BEGIN\n").expect("BEGIN") + "BEGIN\n".len();
    let end = stdout.find("END\n").expect("END");
    (stdout[start..end].to_string(), stderr)
}

/// The elements whose bodies ran, as marked in `marks`, and empties it.
fn marked(marks: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    let _ = std::fs::remove_file(marks);
    text.lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Appends element `i`'s mark (one short write: lines never interleave).
fn mark(i: u64) {
    use std::io::Write;
    let path = std::env::var("MARKS").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{i}\n").as_bytes()).unwrap();
}

/// The resumable call: 40 elements of 0.2 s, each drawing from its stream.
fn slow_seeded() -> Vec<(u64, u64)> {
    foreach!(i in 0..40u64 => {
        std::thread::sleep(Duration::from_millis(200));
        mark(i);
        (i, rng().next_u64())
    } %dofuture% seed = 42, cache = true)
    .unwrap()
}

/// The child side of the scenarios (does nothing in a normal run).
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FUTURIZE_TEST_SCENARIO") else {
        return;
    };
    println!("BEGIN");
    match scenario.as_str() {
        "resume" => {
            plan(Multiprocess::workers(2));
            println!("{:?}", slow_seeded());
        }
        "keys" => keys_scenario(),
        "resume-slurm" => {
            let registry = std::env::var("REGISTRY").unwrap();
            plan(futurize::Slurm::jobs().workers(4).registry(registry));
            println!("{:?}", slow_seeded());
        }
        "printing" => {
            // Chunks of two elements of 60 ms: each chunk's values are
            // written as it finishes (more than 50 ms after the last write).
            let xs: Vec<u64> = foreach!(i in 0..6u64 => {
                std::thread::sleep(Duration::from_millis(60));
                mark(i);
                println!("element {i}");
                i * 3
            } %dofuture% cache = true, chunk_size = 2)
            .unwrap();
            println!("{xs:?}");
        }
        "future" => {
            plan(Multiprocess::workers(1));
            let n: u64 = std::env::var("N").unwrap().parse().unwrap();
            let f = future!(
                {
                    mark(n);
                    println!("computed {n}");
                    n * 7
                },
                cache = true
            );
            println!("{}", f.value().unwrap());
        }
        "attribute" => {
            let xs: Vec<u64> = (0..8).collect();
            println!("{:?}", squares(&xs));
        }
        "logging" => {
            log::set_logger(&PRINTER).unwrap();
            log::set_max_level(log::LevelFilter::Info);
            plan(Multiprocess::workers(1));
            let xs: Vec<u64> = foreach!(i in 0..3u64 => {
                mark(i);
                log::info!("element {i}");
                i + 1
            } %dofuture% cache = true)
            .unwrap();
            let f = future!(
                {
                    mark(10);
                    log::warn!("the future");
                    5u64
                },
                cache = true
            );
            println!("{xs:?} {}", f.value().unwrap());
        }
        "size" => {
            for _ in 0..2 {
                let s = futurize::cache::size().unwrap();
                println!("{} {} {}", s.calls, s.files, s.bytes);
                futurize::cache::clear().unwrap();
            }
        }
        other => panic!("no scenario {other}"),
    }
    println!("END");
}

/// A logger that prints each record as a line of stdout.
struct Printer;

impl log::Log for Printer {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        println!("LOG {} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

static PRINTER: Printer = Printer;

/// `#[futurize(cache = true)]`: the pipeline's `foreach!` keeps its values.
#[futurize(cache = true)]
fn squares(xs: &[u64]) -> Vec<u64> {
    xs.iter()
        .map(|x| {
            mark(*x);
            x * x
        })
        .collect()
}

/// What the misses are made of: the captures, the elements, the seed, the
/// call's tokens. Each line prints the values; the marks say what ran.
fn keys_scenario() {
    plan(Multithread::workers(2));
    let k: u64 = std::env::var("K").unwrap().parse().unwrap();
    let last: u64 = std::env::var("LAST").unwrap().parse().unwrap();
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let xs: Vec<u64> = (0..9).chain([last]).collect();
    let a: Vec<u64> = foreach!(x in &xs => { mark(*x); x * k + rng().next_u64() % 7 } %dofuture% seed = seed, cache = true).unwrap();
    // The same call site line, another body: its own entries.
    let b: Vec<u64> =
        foreach!(x in &xs => { mark(100 + *x); x + k } %dofuture% cache = true).unwrap();
    let c: Vec<u64> =
        foreach!(x in &xs => { mark(200 + *x); x + k + 1 } %dofuture% cache = true).unwrap();
    println!("{a:?} {b:?} {c:?}");
}

#[test]
fn a_killed_run_resumes_running_only_what_had_not_finished() {
    let (cache, marks) = (scratch("resume"), scratch("resume-marks").join("marks"));
    // The uninterrupted values, computed here in place.
    let uninterrupted: Vec<(u64, u64)> =
        foreach!(i in 0..40u64 => (i, rng().next_u64()) %do% seed = 42).unwrap();
    let expected = format!("{uninterrupted:?}\n");
    // The first run is killed (SIGKILL: it runs nothing afterwards) once
    // about half the elements have finished.
    let mut first = program("resume", &cache, &marks, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&marks).map_or(0, |t| t.lines().count()) < 20 {
        assert!(
            Instant::now() < deadline,
            "the first run did not get halfway"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Its workers notice the leader is gone within a quarter second; let
    // any element they were running end before the marks are read.
    std::thread::sleep(Duration::from_millis(700));
    let done_before: BTreeSet<u64> = marked(&marks).into_iter().collect();
    assert!(
        done_before.len() >= 20 && done_before.len() < 40,
        "{done_before:?}"
    );
    let (printed, _) = run("resume", &cache, &marks, &[]);
    let rerun = marked(&marks);
    let rerun_set: BTreeSet<u64> = rerun.iter().copied().collect();
    assert_eq!(
        rerun.len(),
        rerun_set.len(),
        "an element ran twice: {rerun:?}"
    );
    // Everything ran in one run or the other; of the elements the first run
    // finished, only those whose answers it had not yet received (at most
    // one per worker) or not yet written (values wait at most 50 ms to be
    // written together: at most one more per worker) ran again.
    let all: BTreeSet<u64> = done_before.union(&rerun_set).copied().collect();
    assert_eq!(all.len(), 40);
    let again = done_before.intersection(&rerun_set).count();
    assert!(again <= 4, "{again} finished elements ran again: {rerun:?}");
    assert!(rerun.len() <= 40 - done_before.len() + 4, "{rerun:?}");
    assert_eq!(
        printed, expected,
        "values and draws as an uninterrupted run"
    );
    // A third run finds every value: nothing runs.
    let (printed, _) = run("resume", &cache, &marks, &[]);
    assert!(marked(&marks).is_empty());
    assert_eq!(printed, expected);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn misses_are_what_changed_and_only_that() {
    let (cache, marks) = (scratch("keys"), scratch("keys-marks").join("marks"));
    let env = |k: &'static str, last: &'static str, seed: &'static str| {
        [("K", k), ("LAST", last), ("SEED", seed)]
    };
    let ran = |k, last, seed| {
        let (printed, _) = run("keys", &cache, &marks, &env(k, last, seed));
        let mut m = marked(&marks);
        m.sort_unstable();
        (printed, m)
    };
    let every = |offset: u64, last: u64| -> Vec<u64> {
        let mut v: Vec<u64> = (0..9).chain([last]).map(|x| x + offset).collect();
        v.sort_unstable();
        v
    };
    let mut all = every(0, 9);
    all.extend(every(100, 9));
    all.extend(every(200, 9));
    all.sort_unstable();
    let (first, m) = ran("3", "9", "1");
    assert_eq!(m, all, "the first run runs everything");
    // The same run again: nothing runs, the same values.
    let (again, m) = ran("3", "9", "1");
    assert!(m.is_empty(), "{m:?}");
    assert_eq!(again, first);
    // A changed capture: every element of every call runs again.
    let (_, m) = ran("4", "9", "1");
    assert_eq!(m.len(), 30, "{m:?}");
    // A changed element: only it runs again, in each call.
    let (_, m) = ran("4", "50", "1");
    assert_eq!(m, vec![50, 150, 250]);
    // A changed seed: every element of the seeded call, only it.
    let (_, m) = ran("4", "50", "2");
    assert_eq!(m, every(0, 50));
    let _ = std::fs::remove_dir_all(&cache);
}

/// The entry files of a cache.
fn entry_files(cache: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for call in std::fs::read_dir(cache).unwrap().flatten() {
        for f in std::fs::read_dir(call.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|x| x == "chunk") {
                files.push(f.path());
            }
        }
    }
    files
}

#[test]
fn hits_replay_what_their_elements_printed_and_a_truncated_entry_only_costs_a_rerun() {
    let (cache, marks) = (scratch("printing"), scratch("printing-marks").join("marks"));
    let (first, _) = run("printing", &cache, &marks, &[]);
    assert_eq!(marked(&marks).len(), 6);
    // One file per chunk of two elements, never one per element.
    let files = entry_files(&cache);
    assert_eq!(files.len(), 3, "{files:?}");
    let (second, _) = run("printing", &cache, &marks, &[]);
    assert!(marked(&marks).is_empty());
    assert_eq!(second, first, "the same text, in element order");
    assert!(
        first.starts_with("element 0\nelement 1\nelement 2\n"),
        "{first}"
    );
    // A truncated entry: a warning, its two elements run again, the values
    // are right.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let (third, stderr) = run("printing", &cache, &marks, &[]);
    assert_eq!(marked(&marks).len(), 2);
    assert_eq!(third, first);
    assert!(
        stderr.contains("is skipped and its elements run again"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn two_leaders_sharing_a_cache_both_get_right_values() {
    let cache = scratch("shared");
    let marks = scratch("shared-marks");
    let children: Vec<_> = (0..2)
        .map(|i| {
            program("printing", &cache, &marks.join(format!("m{i}")), &[])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).to_string())
        .collect();
    for out in &outputs {
        assert!(out.contains("[0, 3, 6, 9, 12, 15]"), "{out}");
    }
    let (third, _) = run("printing", &cache, &marks.join("m2"), &[]);
    assert!(marked(&marks.join("m2")).is_empty(), "every value was kept");
    assert!(third.contains("[0, 3, 6, 9, 12, 15]"));
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_cached_future_is_found_again_with_what_it_printed() {
    let (cache, marks) = (scratch("future"), scratch("future-marks").join("marks"));
    let (first, _) = run("future", &cache, &marks, &[("N", "6")]);
    assert_eq!(marked(&marks), vec![6]);
    assert_eq!(first, "computed 6\n42\n");
    let (second, _) = run("future", &cache, &marks, &[("N", "6")]);
    assert!(marked(&marks).is_empty(), "the value was kept");
    assert_eq!(second, first, "with what it printed");
    // Another capture: another value.
    let (third, _) = run("future", &cache, &marks, &[("N", "7")]);
    assert_eq!(marked(&marks), vec![7]);
    assert_eq!(third, "computed 7\n49\n");
    // FUTURIZE_CACHE=0 turns it off for every call.
    let out = program(
        "future",
        &cache,
        &marks,
        &[("N", "6"), ("FUTURIZE_CACHE", "0")],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(marked(&marks), vec![6]);
    // Two calls' values are kept (N = 6 and N = 7), one file each; clear()
    // removes them.
    let (sizes, _) = run("size", &cache, &marks, &[]);
    let lines: Vec<&str> = sizes.lines().collect();
    assert!(lines[0].starts_with("2 2 "), "{sizes}");
    assert_eq!(lines[1], "0 0 0");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_killed_run_on_slurm_waits_for_its_jobs_again_and_submits_none_twice() {
    let Some(slurm) = common::slurm::single() else {
        return;
    };
    let (cache, marks) = (scratch("slurm"), scratch("slurm-marks").join("marks"));
    let registry = scratch("slurm-registry");
    let env = [
        ("REGISTRY", registry.to_str().unwrap()),
        ("SLURM_CONF", slurm.conf.to_str().unwrap()),
    ];
    let uninterrupted: Vec<(u64, u64)> =
        foreach!(i in 0..40u64 => (i, rng().next_u64()) %do% seed = 42).unwrap();
    // The leader is killed while its four array tasks run (a quarter of
    // their elements done).
    let mut first = program("resume-slurm", &cache, &marks, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&marks).map_or(0, |t| t.lines().count()) < 10 {
        assert!(Instant::now() < deadline, "the jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let record = || {
        let mut lines = Vec::new();
        for d in std::fs::read_dir(&registry).unwrap().flatten() {
            if let Ok(text) = std::fs::read_to_string(d.path().join("jobs")) {
                lines.extend(text.lines().map(str::to_string));
            }
        }
        lines
    };
    assert_eq!(record().len(), 4, "four array tasks: {:?}", record());
    // The rerun finds the jobs (running, or answered since) and submits
    // nothing: each element ran once, in the first run's jobs.
    let (printed, _) = run("resume-slurm", &cache, &marks, &env);
    assert_eq!(printed, format!("{uninterrupted:?}\n"));
    assert_eq!(
        record().len(),
        4,
        "a task was submitted again: {:?}",
        record()
    );
    let ran = marked(&marks);
    let distinct: BTreeSet<u64> = ran.iter().copied().collect();
    assert_eq!((ran.len(), distinct.len()), (40, 40), "{ran:?}");
    // The values are now cached: a third run submits nothing either.
    let (printed, _) = run("resume-slurm", &cache, &marks, &env);
    assert_eq!(printed, format!("{uninterrupted:?}\n"));
    assert!(marked(&marks).is_empty());
    assert_eq!(record().len(), 4);
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(&registry);
}

#[test]
fn a_futurized_function_keeps_its_values_too() {
    let (cache, marks) = (
        scratch("attribute"),
        scratch("attribute-marks").join("marks"),
    );
    let (first, _) = run("attribute", &cache, &marks, &[]);
    assert_eq!(marked(&marks).len(), 8);
    let (second, _) = run("attribute", &cache, &marks, &[]);
    assert!(marked(&marks).is_empty());
    assert_eq!(second, first);
    assert_eq!(first, "[0, 1, 4, 9, 16, 25, 36, 49]\n");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn hits_replay_the_log_records_their_elements_sent() {
    let (cache, marks) = (scratch("logging"), scratch("logging-marks").join("marks"));
    let (first, _) = run("logging", &cache, &marks, &[]);
    assert_eq!(marked(&marks).len(), 4);
    let expected = "LOG INFO element 0\nLOG INFO element 1\nLOG INFO element 2\n\
                    LOG WARN the future\n[1, 2, 3] 5\n";
    assert_eq!(first, expected);
    let (second, _) = run("logging", &cache, &marks, &[]);
    assert!(marked(&marks).is_empty(), "every value was kept");
    assert_eq!(second, first, "the same records, in element order");
    let _ = std::fs::remove_dir_all(&cache);
}
