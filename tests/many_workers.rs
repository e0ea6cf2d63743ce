//! A thousand worker processes under the common default `ulimit -n 1024`:
//! the pool raises the soft limit on open files to the hard one and uses at
//! most three descriptors per worker; when the hard limit is too low it
//! says so before starting any worker. Each case runs in a child process
//! started under the limit by `sh -c 'ulimit ...; exec ...'`.

mod common;

use futurize::prelude::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `scenario` in a child under `ulimit`; its stdout between markers,
/// and its success.
fn under_limit(ulimit: &str, scenario: &str) -> (String, bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit {ulimit} && exec \"$0\" child_scenario --exact --nocapture --test-threads=1"
        ))
        .arg(std::env::current_exe().unwrap())
        .env("FUTURIZE_TEST_SCENARIO", scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = match (stdout.find("BEGIN\n"), stdout.find("END\n")) {
        (Some(a), Some(b)) => stdout[a + 6..b].to_string(),
        _ => String::new(),
    };
    (report, out.status.success(), format!("{stdout}\n{stderr}"))
}

fn field<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no `{name}` in {report}"))
}

#[test]
fn a_thousand_workers_under_a_soft_limit_of_1024_open_files() {
    let hard: u64 = {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into our struct.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
        l.rlim_max
    };
    if hard < 3 * 1000 + 64 {
        eprintln!(
            "SKIPPED: the hard limit on open files here is {hard}, below what 1000 workers need"
        );
        return;
    }
    let started = Instant::now();
    let (report, ok, all) = under_limit("-Sn 1024", "thousand");
    assert!(ok, "{all}");
    assert_eq!(field(&report, "soft_before"), "1024", "{report}");
    assert_eq!(field(&report, "distinct_pids"), "1000", "{report}");
    let fds: u64 = field(&report, "open_fds").parse().unwrap();
    assert!(fds <= 3 * 1000 + 64, "{fds} descriptors for 1000 workers");
    eprintln!("1000 workers: {:?}, {fds} descriptors", started.elapsed());
}

#[test]
fn a_hard_limit_too_low_is_an_error_before_any_worker_starts() {
    let (report, ok, all) = under_limit("-n 1024", "too_many");
    assert!(ok, "{all}");
    let error = field(&report, "error");
    assert!(error.contains("3064 open files"), "{error}");
    assert!(error.contains("hard limit"), "{error}");
    assert!(error.contains("ulimit -Hn"), "{error}");
    assert_eq!(field(&report, "children"), "0", "no worker was started");
}

/// The child side (does nothing in a normal run).
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FUTURIZE_TEST_SCENARIO") else {
        return;
    };
    let soft = || {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into our struct.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
        l.rlim_cur
    };
    println!("BEGIN");
    match scenario.as_str() {
        "thousand" => {
            println!("soft_before {}", soft());
            plan(Multiprocess::workers(1000));
            // Each element waits until all have started, so a thousand
            // workers run at once.
            let pids: Vec<u32> = foreach!(_i in 0..1000u32 => {
                std::thread::sleep(Duration::from_secs(12));
                std::process::id()
            } %dofuture% chunk_size = 1)
            .unwrap();
            let mut distinct = pids.clone();
            distinct.sort();
            distinct.dedup();
            println!("distinct_pids {}", distinct.len());
            let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
            println!("open_fds {fds}");
            println!("soft_after {}", soft());
            plan(Sequential);
        }
        "too_many" => {
            plan(Multiprocess::workers(1000));
            let e = future!(1u8).value().unwrap_err();
            println!("error {e}");
            // Processes whose parent is this one.
            let me = std::process::id().to_string();
            let children = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                .filter(|stat| {
                    stat.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().nth(1))
                        == Some(me.as_str())
                })
                .count();
            println!("children {children}");
        }
        other => panic!("no scenario {other}"),
    }
    println!("END");
}
