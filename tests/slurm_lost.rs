//! When Slurm itself stops answering (its controller dies while a job
//! runs), a future waiting for that job ends with an error quoting squeue
//! once `FUTURIZE_SLURM_SILENCE_LIMIT` has passed, instead of waiting
//! forever. A Slurm of this test's own (its own directory, ports and
//! munged, from scripts/test-slurm.sh), since its controller is killed.

mod common;

use futurize::prelude::*;
use futurize::{Error, Slurm};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const DIR: &str = "/tmp/futurize-slurm-lost";

fn script() -> Command {
    let mut c = Command::new("bash");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-slurm.sh"
    ))
    .env("SLURM_TEST_DIR", DIR)
    .env("SLURM_TEST_CTLD_PORT", "7217")
    .env("SLURM_TEST_SLURMD_PORT", "7218")
    .env("SLURM_TEST_CLEAN", "1");
    c
}

/// Stops this test's Slurm (step processes, slurmd, munged, a controller
/// that still runs), on return and on panic alike; then ends the
/// `slurmstepd` of the job, which outlives slurmd while it waits to report
/// to the dead controller.
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = script().arg("stop").output();
        for pid in of_this_slurm() {
            // SAFETY: a plain signal to a process of this test's Slurm.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Processes (other than this one) started by this test's Slurm: their
/// environment names its configuration.
fn of_this_slurm() -> Vec<i32> {
    let marker = format!("SLURM_CONF={DIR}/etc/slurm.conf");
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                .unwrap_or(false)
        })
        // A zombie has ended already.
        .filter(|pid| common::alive(*pid as u32))
        .collect()
}

#[test]
fn a_future_whose_slurm_stops_answering_fails_quoting_squeue() {
    if !common::slurm::installed() {
        return;
    }
    let out = script().arg("start").output().expect("bash runs");
    let _stop = Stop;
    assert!(
        out.status.success(),
        "scripts/test-slurm.sh start failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let conf = text
        .lines()
        .find_map(|l| l.strip_prefix("export SLURM_CONF="))
        .map(|v| PathBuf::from(v.trim().trim_matches('"')))
        .expect("the script prints SLURM_CONF");
    // SAFETY: this binary's only test sets them before any job or thread
    // that reads them.
    unsafe {
        std::env::set_var("SLURM_CONF", &conf);
        std::env::set_var("FUTURIZE_SLURM_SILENCE_LIMIT", "2s");
    }
    let registry =
        std::env::temp_dir().join(format!("futurize-registry-lost-{}", std::process::id()));
    let _g = with_plan(Slurm::jobs().registry(&registry));
    let f = future!(
        {
            std::thread::sleep(std::time::Duration::from_secs(40));
            1u32
        },
        label = "lost"
    );
    let job = common::slurm::running_job("futurize-lost", Duration::from_secs(60))
        .expect("the job starts");
    let pid: i32 = std::fs::read_to_string(format!("{DIR}/run/slurmctld.pid"))
        .expect("the controller's pid file")
        .trim()
        .parse()
        .expect("a pid");
    // SAFETY: `kill` takes no pointers and touches no memory of this
    // process; `pid` is the controller this test's cluster started.
    let sent = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(sent, 0, "kill slurmctld {pid}");
    let killed = Instant::now();
    match f.value() {
        Err(Error::WorkerDied { worker, cause, .. }) => {
            assert!(worker.contains(&job), "{worker} names job {job}");
            assert!(cause.contains("has not answered"), "{cause}");
            assert!(cause.contains("squeue"), "{cause}");
            assert!(
                cause.contains(&registry.display().to_string()),
                "the registry is kept and named: {cause}"
            );
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let waited = killed.elapsed();
    eprintln!("given up {waited:?} after the controller died");
    assert!(
        waited < Duration::from_secs(35),
        "given up before the job itself would have answered: {waited:?}"
    );
    let _ = std::fs::remove_dir_all(&registry);
    drop(_stop);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !of_this_slurm().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        of_this_slurm(),
        Vec::<i32>::new(),
        "processes of this test's Slurm left"
    );
}
