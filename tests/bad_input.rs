//! Bad input, as an attacker or a careless user gives it: huge, zero,
//! negative and garbage numbers and durations in the environment, plan
//! texts with too many workers, R's names or shell syntax in host names.
//! Each must be an error naming the variable and the value, never a panic,
//! a hang or a silent default.
//!
//! The variables are read once per process, so each row runs this test
//! binary again as a child with the variable set (`child_runs_a_future`),
//! under a deadline that only catches a hang.

use futurize::Error;
use futurize::prelude::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One bad input: the variables set, and what the error must say besides
/// the variable and the value.
struct Row {
    variable: &'static str,
    value: &'static str,
    /// `FUTURIZE_PLAN`, when the row is about another variable.
    plan: &'static str,
    says: &'static str,
}

const fn row(variable: &'static str, value: &'static str, says: &'static str) -> Row {
    Row {
        variable,
        value,
        plan: "multiprocess:1",
        says,
    }
}

const PLAN: &str = "FUTURIZE_PLAN";
const SILENCE: &str = "FUTURIZE_SILENCE_LIMIT";
const SLURM_SILENCE: &str = "FUTURIZE_SLURM_SILENCE_LIMIT";
const FRAME: &str = "FUTURIZE_MAX_FRAME_BYTES";
const POOL_IDLE: &str = "FUTURIZE_POOL_IDLE";

const ROWS: &[Row] = &[
    row(SILENCE, "99999999999999999999999d", "at most 365 days"),
    row(SILENCE, "366d", "at most 365 days"),
    row(SILENCE, "garbage", "is not a duration"),
    row(POOL_IDLE, "soon", "is not a duration"),
    row(POOL_IDLE, "-1s", "is not a duration"),
    row(SILENCE, "0s", "at least 1.5s"),
    row(SILENCE, "-5s", "is not a duration"),
    row(SILENCE, "500ms", "at least 1.5s"),
    row(SILENCE, "30", "a number without a unit"),
    row(
        SLURM_SILENCE,
        "99999999999999999999999d",
        "at most 365 days",
    ),
    row(SLURM_SILENCE, "2", "a number without a unit"),
    row(SLURM_SILENCE, "0s", "at least 1s"),
    row(SLURM_SILENCE, "-5s", "is not a duration"),
    row(FRAME, "0", "lets nothing through"),
    row(FRAME, "garbage", "not a whole number of bytes"),
    row(FRAME, "-5", "not a whole number of bytes"),
    row(FRAME, "18446744073709551615", "too large"),
    row(FRAME, "99999999999999999999999", "too large"),
    row(
        PLAN,
        "slurm-pool:1000/multiprocess:4096",
        "4096000 workers: a pool has at most 4096",
    ),
    row(PLAN, "multiprocess:18446744073709551615", "at most 4096"),
    row(PLAN, "multithread:99999999", "at most 4096"),
    row(PLAN, "multithread:4097", "at most 4096"),
    row(PLAN, "slurm:99999", "at most 10000"),
    row(PLAN, "multiprocess:-2", "not a number of workers"),
    row(
        PLAN,
        "multiprocess:2|",
        "an alternative of `multiprocess:2|` is empty",
    ),
    row(PLAN, "multisession:2", "did you mean `multiprocess:2`?"),
    row(
        PLAN,
        "multisession",
        "R's `multisession` is `multiprocess` here",
    ),
    row(PLAN, "multicore:2", "did you mean `multithread:2`?"),
    row(PLAN, "multiproces:2", "did you mean `multiprocess:2`?"),
    row(PLAN, "cluster:n1;touch /tmp/futurize-pwned", "';'"),
    row(PLAN, "cluster:$(id)", "'$'"),
    row(PLAN, "cluster:`id`", "'`'"),
    row(PLAN, "cluster:me;id@n1", "user name `me;id`"),
    row(PLAN, "cluster:-oProxyCommand=id", "starts with `-`"),
    row(PLAN, "cluster:fe80::1", "brackets"),
];

/// Runs `child_runs_a_future` with `env` set; fails on a hang.
fn child(env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_runs_a_future",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_BAD_INPUT", "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut running = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = running.kill();
            panic!("the child with {env:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.wait_with_output().unwrap()
}

/// What the child reported (`ok ...` or `error=...`), after checking that
/// it ended well and nothing panicked.
fn report(env: &[(&str, &str)]) -> (String, String) {
    let out = child(env);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{env:?}: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{env:?}: {stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("{env:?}: no report in {stdout}"));
    (line, stderr)
}

#[test]
fn every_bad_input_is_an_error_naming_the_variable_and_the_value() {
    for r in ROWS {
        let env: Vec<(&str, &str)> = if r.variable == PLAN {
            vec![(PLAN, r.value)]
        } else {
            vec![(PLAN, r.plan), (r.variable, r.value)]
        };
        let (said, _) = report(&env);
        let Some(error) = said.strip_prefix("error=") else {
            panic!("{}={}: ran without an error: {said}", r.variable, r.value);
        };
        assert!(error.contains(r.variable), "{}: {error}", r.value);
        assert!(error.contains(&format!("`{}`", r.value)), "{error}");
        assert!(
            error.contains(r.says),
            "{}={}: {error}",
            r.variable,
            r.value
        );
        assert!(
            error.len() < 700 + 2 * r.value.len(),
            "{} characters: {error}",
            error.len()
        );
    }
}

#[test]
fn good_values_of_the_same_variables_run() {
    let (said, _) = report(&[
        (PLAN, "multiprocess:1"),
        (SILENCE, "2s"),
        (SLURM_SILENCE, "1m"),
        (FRAME, "1000000"),
    ]);
    assert_eq!(said, "ok plan=multiprocess:1 value=42");
}

#[test]
fn an_empty_futurize_plan_means_no_plan_from_the_environment() {
    for empty in ["", "  "] {
        let (said, _) = report(&[(PLAN, empty)]);
        assert_eq!(said, "ok plan=sequential value=42", "{empty:?}");
    }
}

#[test]
fn a_malformed_futurize_plan_is_reported_when_the_code_sets_a_plan() {
    let (said, stderr) = report(&[(PLAN, "bogus"), ("FUTURIZE_TEST_CODE_PLAN", "1")]);
    assert_eq!(
        said, "ok plan=multithread:2 value=42",
        "the code's plan wins"
    );
    let warning = stderr
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(warning.contains("FUTURIZE_PLAN"), "{warning}");
    assert!(warning.contains("`bogus`"), "{warning}");
    assert_eq!(stderr.matches("warning").count(), 1, "said once: {stderr}");
}

/// The child side: a future under the plan in force (multithread:2 set in
/// code with `FUTURIZE_TEST_CODE_PLAN`), and what came of it.
#[test]
fn child_runs_a_future() {
    if std::env::var_os("FUTURIZE_TEST_BAD_INPUT").is_none() {
        return;
    }
    if std::env::var_os("FUTURIZE_TEST_CODE_PLAN").is_some() {
        plan(Multithread::workers(2));
        // A second plan set in code does not repeat the warning.
        let _g = with_plan(Multithread::workers(2));
    }
    match future!(6 * 7).value() {
        Ok(v) => println!("REPORT ok plan={} value={v}", current_plan().unwrap()),
        Err(e) => println!("REPORT error={e}"),
    }
}

#[test]
fn a_plan_in_code_past_the_worker_limit_is_an_error_when_it_starts() {
    let _g = with_plan(Multithread::workers(5000));
    let e = future!(1u8).value().unwrap_err();
    assert!(matches!(e, Error::Plan { .. }), "{e}");
    let said = e.to_string();
    assert!(said.contains("plan()"), "{said}");
    assert!(said.contains("multithread:5000"), "{said}");
    assert!(said.contains("at most 4096"), "{said}");
}

#[test]
fn a_huge_wall_time_or_memory_in_resources_is_an_error() {
    let _g = with_plan(Multiprocess::workers(1));
    let time = String::from("99999999999999999999999d");
    let e = future!(1u8, resources = (time = time.clone()))
        .value()
        .unwrap_err();
    let said = e.to_string();
    assert!(matches!(e, Error::Resources { .. }), "{said}");
    assert!(
        said.contains(&time) && said.contains("at most 365 days"),
        "{said}"
    );
    let mem = String::from("99999999999999999999999T");
    let e = future!(1u8, resources = (mem = mem.clone()))
        .value()
        .unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains(&mem) && said.contains("at most 1024T"),
        "{said}"
    );
}
