//! Worker pools on Slurm (`slurm-pool:N`) on the project's fake three-node
//! Slurm: values and seeded draws as on other plans, allocations that grow
//! under a backlog and go back to none when idle, a time limit handed over
//! to a replacement, an allocation cancelled mid-call, a leader killed, and
//! the same plan inside `salloc`.

mod common;

use common::slurm;
use futurize::prelude::*;
use futurize::{Error, Slurm, SlurmPool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A pool with a registry of this test's own, or `None` (skipped).
fn pool(name: &str) -> Option<(SlurmPool, PathBuf)> {
    slurm::three_nodes()?;
    let registry = registry(name);
    Some((Slurm::pool().registry(&registry), registry))
}

fn registry(name: &str) -> PathBuf {
    let registry = std::env::temp_dir().join(format!(
        "futurize-pool-registry-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&registry);
    registry
}

/// The jobs of the pool whose registry is `registry` that squeue shows in
/// `state` (their scripts are in the registry).
fn pool_jobs(registry: &Path, state: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args([
            "--me",
            "-h",
            "-t",
            state,
            "-n",
            "futurize-pool",
            "-o",
            "%i %o",
        ])
        .output()
        .expect("squeue runs");
    let under = registry.to_string_lossy().into_owned();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, script)| script.starts_with(&under))
        .map(|(id, _)| id.trim().to_string())
        .collect()
}

/// The first running job of the pool whose registry is `registry`.
fn running_job(registry: &Path, within: Duration) -> Option<String> {
    let mut job = None;
    eventually(within, || {
        job = pool_jobs(registry, "RUNNING").into_iter().next();
        job.is_some()
    });
    job
}

/// Waits up to `within` for `check` to hold.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    check()
}

/// The arguments that make this binary run one scenario of
/// `child_scenario` (named by `FUTURIZE_TEST_SCENARIO`).
const CHILD: [&str; 4] = [
    "child_scenario",
    "--exact",
    "--nocapture",
    "--test-threads=1",
];

/// Tests of this binary that look at the pool's jobs in squeue run one at a
/// time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn values_and_seeded_draws_equal_sequential_and_run_in_pool_jobs() {
    let Some((pool, _)) = pool("values") else {
        return;
    };
    let _s = serial();
    let xs: Vec<u64> = (1..=40).collect();
    let offset = 7u64;
    let on = |plan: futurize::Plan| {
        let _g = with_plan(plan);
        let values: Vec<(u64, u64, String)> = foreach!(x in &xs => {
            let draw: u64 = rng().next_u64() % 1000;
            (x * 3 + offset, draw, std::env::var("SLURM_JOB_ID").unwrap_or_default())
        } %dofuture% seed = 42, chunk_size = 3)
        .unwrap();
        let f = future!((offset * 2, rng().next_u64()), seed = 9);
        (values, f.value().unwrap())
    };
    let (expected, expected_future) = on(Sequential.into());
    let (got, got_future) = on(pool.allocations(2).idle(Duration::from_secs(2)).into());
    let strip = |v: &[(u64, u64, String)]| v.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>();
    assert_eq!(strip(&got), strip(&expected));
    assert_eq!(got_future, expected_future);
    // Every element ran in a job of the pool's.
    let mut jobs: Vec<&String> = got.iter().map(|t| &t.2).collect();
    jobs.sort();
    jobs.dedup();
    for job in jobs {
        let out = Command::new("scontrol")
            .args(["show", "job", "-o", job])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("JobName=futurize-pool"),
            "job `{job}`: {text}"
        );
    }
}

#[test]
fn a_nested_multiprocess_level_sizes_each_allocation() {
    let Some((pool, _)) = pool("sized") else {
        return;
    };
    let _s = serial();
    let _g = with_plan(futurize::Plan::from([
        pool.allocations(1).idle(Duration::from_secs(2)).into(),
        Multiprocess::workers(2).into(),
    ]));
    assert_eq!(nbr_of_workers().unwrap(), 2);
    let seen: Vec<(String, u32, String)> = foreach!(_i in 0..8u32 => {
        std::thread::sleep(Duration::from_millis(300));
        (
            std::env::var("SLURM_JOB_ID").unwrap_or_default(),
            std::process::id(),
            current_plan().unwrap().to_string(),
        )
    } %dofuture% chunk_size = 1)
    .unwrap();
    let mut jobs: Vec<&String> = seen.iter().map(|s| &s.0).collect();
    jobs.sort();
    jobs.dedup();
    let mut pids: Vec<u32> = seen.iter().map(|s| s.1).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(jobs.len(), 1, "one allocation: {seen:?}");
    assert_eq!(pids.len(), 2, "two workers in it: {seen:?}");
    assert!(seen.iter().all(|s| s.2 == "sequential"), "{seen:?}");
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", jobs[0]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NumCPUs=2"), "{text}");
}

#[test]
fn a_backlog_grows_the_pool_to_n_allocations_and_idle_takes_it_back_to_none() {
    let Some((pool, registry)) = pool("grow") else {
        return;
    };
    let _s = serial();
    let _g = with_plan(pool.allocations(3).idle(Duration::from_secs(2)));
    assert_eq!(nbr_of_workers().unwrap(), 3);
    assert!(
        pool_jobs(&registry, "RUNNING,PENDING").is_empty(),
        "no work, no allocation"
    );
    let seen = registry.clone();
    let watcher = std::thread::spawn(move || {
        let mut most = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            most = most.max(pool_jobs(&seen, "RUNNING").len());
            if most >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        most
    });
    let jobs: Vec<String> = foreach!(_i in 0..18u32 => {
        std::thread::sleep(Duration::from_millis(500));
        std::env::var("SLURM_JOB_ID").unwrap_or_default()
    } %dofuture% chunk_size = 1)
    .unwrap();
    let most = watcher.join().unwrap();
    let mut distinct = jobs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(most, 3, "squeue showed at most {most} pool jobs running");
    assert_eq!(distinct.len(), 3, "elements ran in {distinct:?}");
    // Idle for 2 s: every allocation is given back.
    assert!(
        eventually(Duration::from_secs(20), || pool_jobs(
            &registry,
            "RUNNING,PENDING"
        )
        .is_empty()),
        "still held: {:?}",
        pool_jobs(&registry, "RUNNING,PENDING")
    );
    // And the pool grows again on new work.
    let again: Vec<u32> = foreach!(i in 0..4u32 => i * 2 %dofuture%).unwrap();
    assert_eq!(again, vec![0, 2, 4, 6]);
}

#[test]
fn a_burst_one_worker_serves_keeps_no_extra_allocation() {
    let Some((pool, registry)) = pool("burst") else {
        return;
    };
    let _s = serial();
    // A long idle time: an allocation that runs nothing would stay 30 s.
    let _g = with_plan(pool.allocations(3).idle(Duration::from_secs(30)));
    let futures: Vec<_> = (0..300u32).map(|i| future!(i * 2)).collect();
    let values: Vec<u32> = futures.into_iter().map(|f| f.value().unwrap()).collect();
    assert_eq!(values, (0..300u32).map(|i| i * 2).collect::<Vec<_>>());
    // Whatever more the burst asked for is given back (or cancelled) once
    // it starts, not kept for the idle time.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        eventually(Duration::from_secs(10), || pool_jobs(
            &registry,
            "RUNNING,PENDING"
        )
        .len()
            <= 1),
        "held: {:?}",
        pool_jobs(&registry, "RUNNING,PENDING")
    );
}

#[test]
fn an_allocation_near_its_time_limit_hands_over_to_a_replacement() {
    let Some((pool, _)) = pool("drain") else {
        return;
    };
    let _s = serial();
    // One allocation of one minute that stops taking work 50 s before its
    // end: after about 10 s a replacement takes over.
    let _g = with_plan(
        pool.allocations(1)
            .idle(Duration::from_secs(2))
            .drain_before(Duration::from_secs(50))
            .resources(futurize::Resources::new().time("1m")),
    );
    let ran: Vec<(u32, String)> = foreach!(i in 0..40u32 => {
        std::thread::sleep(Duration::from_millis(500));
        (i, std::env::var("SLURM_JOB_ID").unwrap_or_default())
    } %dofuture% chunk_size = 1)
    .unwrap();
    assert_eq!(
        ran.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    let mut jobs: Vec<&String> = ran.iter().map(|r| &r.1).collect();
    jobs.dedup();
    assert!(
        jobs.len() >= 2,
        "the elements ran in one allocation only: {jobs:?}"
    );
}

#[test]
fn an_allocation_cancelled_mid_call_is_worker_died_naming_it_and_retries_rerun_it() {
    let Some((pool, registry)) = pool("cancel") else {
        return;
    };
    let _s = serial();
    let _g = with_plan(pool.allocations(1).idle(Duration::from_secs(2)));
    let cancel_first = || {
        let registry = registry.clone();
        std::thread::spawn(move || {
            let job = running_job(&registry, Duration::from_secs(30)).expect("a pool job runs");
            std::thread::sleep(Duration::from_secs(2));
            Command::new("scancel").arg(&job).status().unwrap();
            job
        })
    };
    // Without retries: the element is lost, the error names the job.
    let canceller = cancel_first();
    let result: Result<Vec<u32>, Error> = foreach!(i in 0..6u32 => {
        std::thread::sleep(Duration::from_secs(1));
        i
    } %dofuture% chunk_size = 1);
    let job = canceller.join().unwrap();
    match result {
        Err(Error::WorkerDied { worker, .. }) => {
            assert!(worker.contains(&format!("Slurm job {job}")), "{worker}")
        }
        other => panic!("expected WorkerDied naming job {job}, got {other:?}"),
    }
    // With retries: another allocation reruns it.
    let canceller = cancel_first();
    let values: Vec<(u32, String)> = foreach!(i in 0..6u32 => {
        std::thread::sleep(Duration::from_secs(1));
        (i, std::env::var("SLURM_JOB_ID").unwrap_or_default())
    } %dofuture% chunk_size = 1, retries = 2)
    .unwrap();
    let cancelled = canceller.join().unwrap();
    assert_eq!(
        values.iter().map(|v| v.0).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert!(
        values.iter().any(|v| v.1 != cancelled),
        "a replacement ran some: {values:?}"
    );
}

#[test]
fn a_killed_leader_leaves_no_allocation_and_no_step_behind() {
    let Some(s) = slurm::three_nodes() else {
        return;
    };
    let _s = serial();
    let registry = registry("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(CHILD)
        .env("SLURM_CONF", &s.conf)
        .env("FUTURIZE_REGISTRY", &registry)
        .env("FUTURIZE_PLAN", "slurm-pool:1")
        .env("FUTURIZE_TEST_SCENARIO", "long")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let job = running_job(&registry, Duration::from_secs(30));
    // Its element runs (the agent's step is up).
    let stepped = eventually(Duration::from_secs(20), || {
        let out = Command::new("squeue")
            .args(["--me", "-h", "-s", "-o", "%i"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().any(|l| {
            job.as_ref()
                .is_some_and(|j| l.starts_with(&format!("{j}.")))
        })
    });
    // SIGKILL: the leader runs nothing afterwards.
    child.kill().unwrap();
    child.wait().unwrap();
    let job = job.expect("the pool's allocation ran");
    assert!(stepped, "the agent's step of job {job} never showed");
    assert!(
        eventually(Duration::from_secs(40), || !pool_jobs(
            &registry,
            "RUNNING,PENDING"
        )
        .contains(&job)),
        "job {job} still held; steps: {}; processes: {}",
        String::from_utf8_lossy(
            &Command::new("squeue")
                .args(["--me", "-s"])
                .output()
                .unwrap()
                .stdout
        ),
        String::from_utf8_lossy(
            &Command::new("ps")
                .args(["-ef", "--forest"])
                .output()
                .unwrap()
                .stdout
        )
    );
    let out = Command::new("squeue")
        .args(["--me", "-h", "-s", "-o", "%i"])
        .output()
        .unwrap();
    let steps = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !steps.lines().any(|l| l.starts_with(&format!("{job}."))),
        "steps left: {steps}"
    );
}

#[test]
fn inside_an_allocation_the_pool_runs_steps_of_it() {
    let Some(s) = slurm::three_nodes() else {
        return;
    };
    let _s = serial();
    let out = Command::new("salloc")
        .args(["--nodes=2", "--ntasks=2", "--quiet", "--time=5"])
        .arg(std::env::current_exe().unwrap())
        .args(CHILD)
        .env("SLURM_CONF", &s.conf)
        .env("FUTURIZE_PLAN", "slurm-pool:4")
        .env("FUTURIZE_TEST_SCENARIO", "inside")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let start = stdout.find("BEGIN\n").expect("BEGIN") + "BEGIN\n".len();
    let end = stdout.find("END\n").expect("END");
    assert_eq!(
        &stdout[start..end],
        "in this allocation's steps true\nnodes 2\n",
        "{stderr}"
    );
}

#[test]
fn without_slurm_commands_the_pool_is_a_launch_error_saying_so() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(CHILD)
        .env("PATH", "/nonexistent")
        .env("FUTURIZE_PLAN", "slurm-pool:2")
        .env("FUTURIZE_TEST_SCENARIO", "no_sbatch")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("launch error: `sbatch` and `srun` must be on the PATH"),
        "{stdout}"
    );
}

/// The child side of the scenarios (does nothing in a normal run).
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FUTURIZE_TEST_SCENARIO") else {
        return;
    };
    println!("BEGIN");
    match scenario.as_str() {
        "long" => {
            let f = future!({
                std::thread::sleep(Duration::from_secs(600));
                1
            });
            println!("{:?}", f.value());
        }
        "inside" => {
            let own = std::env::var("SLURM_JOB_ID").unwrap();
            let seen: Vec<(String, String, bool)> = foreach!(_i in 0..8u32 => {
                std::thread::sleep(Duration::from_millis(100));
                (
                    std::env::var("SLURM_JOB_ID").unwrap_or_default(),
                    std::env::var("SLURMD_NODENAME").unwrap_or_default(),
                    std::env::var_os("SLURM_STEP_ID").is_some(),
                )
            } %dofuture% chunk_size = 1)
            .unwrap();
            println!(
                "in this allocation's steps {}",
                seen.iter().all(|(j, _, step)| *j == own && *step)
            );
            let mut nodes: Vec<&String> = seen.iter().map(|s| &s.1).collect();
            nodes.sort();
            nodes.dedup();
            println!("nodes {}", nodes.len());
        }
        "no_sbatch" => match future!(1u32).value() {
            Err(e @ Error::Launch { .. }) => println!(
                "launch error: {}",
                e.to_string()
                    .split(": ")
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(": ")
            ),
            other => println!("unexpected: {other:?}"),
        },
        other => panic!("no scenario {other}"),
    }
    println!("END");
}
