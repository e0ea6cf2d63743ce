//! Futures on a real single-node Slurm (the project's own
//! scripts/test-slurm.sh): every future a batch job, every `foreach!` a job
//! array; jobs that fail, run out of time or are cancelled from outside.

mod common;

use common::slurm;
use futurize::prelude::*;
use futurize::{Error, Slurm};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A registry of this test's own, and the plan that uses it.
fn jobs(name: &str) -> Option<(Slurm, PathBuf)> {
    let s = slurm::single()?;
    let registry =
        std::env::temp_dir().join(format!("futurize-registry-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&registry);
    // The Slurm commands find their cluster through SLURM_CONF.
    assert_eq!(
        std::env::var_os("SLURM_CONF").as_deref(),
        Some(s.conf.as_os_str()),
        "run the Slurm tests with SLURM_CONF set (tests/common/slurm.rs sets it)"
    );
    Some((Slurm::jobs().registry(&registry), registry))
}

/// Entries left in a registry.
fn left_in(registry: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(registry)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_future_is_a_job_and_its_registry_goes_once_collected() {
    let Some((plan, registry)) = jobs("future") else {
        return;
    };
    let _g = with_plan(plan);
    let x = 20u64;
    let started = Instant::now();
    let f = future!({
        println!(
            "in job {}",
            std::env::var("SLURM_JOB_ID").unwrap_or_default()
        );
        (x + 1, std::env::var_os("SLURM_JOB_ID").is_some())
    });
    assert_eq!(f.value().unwrap(), (21, true));
    eprintln!("a future as a job took {:?}", started.elapsed());
    assert!(left_in(&registry).is_empty(), "{:?}", left_in(&registry));
}

#[test]
fn a_foreach_is_one_job_array_with_seeds_as_everywhere() {
    let Some((plan, registry)) = jobs("array") else {
        return;
    };
    let expected: Vec<u64> = {
        let _g = with_plan(Sequential);
        foreach!(i in 0..40u64 => i * 3 + rng().next_u64() % 7 %dofuture% seed = 5).unwrap()
    };
    let _g = with_plan(plan.workers(4));
    let got: Vec<u64> =
        foreach!(i in 0..40u64 => i * 3 + rng().next_u64() % 7 %dofuture% seed = 5).unwrap();
    assert_eq!(got, expected);
    // Four array tasks at most: the pids of the bodies tell the jobs apart.
    let jobs: Vec<String> = foreach!(_i in 0..40u32 => {
        format!("{}_{}", std::env::var("SLURM_ARRAY_JOB_ID").unwrap_or_default(),
                std::env::var("SLURM_ARRAY_TASK_ID").unwrap_or_default())
    } %dofuture%)
    .unwrap();
    let mut distinct = jobs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{distinct:?}");
    assert!(left_in(&registry).is_empty(), "{:?}", left_in(&registry));
}

#[test]
fn a_job_cancelled_from_outside_is_an_error_naming_it_and_its_registry_stays() {
    let Some((plan, registry)) = jobs("scancel") else {
        return;
    };
    let _g = with_plan(plan);
    let f = future!(
        {
            println!("about to wait");
            std::thread::sleep(Duration::from_secs(120));
            1u8
        },
        label = "victim"
    );
    let job = slurm::running_job("futurize-victim", Duration::from_secs(30)).expect("the job runs");
    let status = Command::new("scancel").arg(&job).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let e = f.value().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::WorkerDied { .. }), "{msg}");
    assert!(msg.contains(&format!("Slurm job {job}")), "{msg}");
    assert!(msg.contains("CANCELLED"), "{msg}");
    assert!(msg.contains("exit code"), "{msg}");
    assert!(msg.contains("registry is kept at"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(left_in(&registry).len(), 1, "the registry is kept");
}

#[test]
fn a_job_whose_process_exits_says_its_exit_code_and_the_end_of_its_log() {
    let Some((plan, registry)) = jobs("exit") else {
        return;
    };
    let _g = with_plan(plan);
    let f = future!({
        eprintln!("giving up now");
        std::process::exit(3);
        #[allow(unreachable_code)]
        0u8
    });
    let e = f.value().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::WorkerDied { .. }), "{msg}");
    assert!(msg.contains("FAILED"), "{msg}");
    assert!(msg.contains("exit code 3:0"), "{msg}");
    let _ = registry;
    // Under stop the lost chunk is named; with retries the values come.
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..8u32 => {
        if i == 5 { std::process::exit(4) }
        i
    } %dofuture% chunk_size = 2);
    match r {
        Err(Error::WorkerDied {
            elements, worker, ..
        }) => {
            assert_eq!(elements, Some(4..6));
            assert!(worker.starts_with("Slurm job "), "{worker}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn a_job_over_its_time_limit_is_an_error_saying_timeout() {
    let Some((plan, _registry)) = jobs("timeout") else {
        return;
    };
    // Slurm's limits count in minutes, and it looks at them about twice a
    // minute: this takes one to one and a half minutes.
    let _g = with_plan(plan.resources(futurize::Resources::new().time("1m")));
    let started = Instant::now();
    let f = future!({
        std::thread::sleep(Duration::from_secs(600));
        0u8
    });
    let e = f.value().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::WorkerDied { .. }), "{msg}");
    assert!(msg.contains("TIMEOUT"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_a_future_cancels_its_job() {
    let Some((plan, _registry)) = jobs("drop") else {
        return;
    };
    let _g = with_plan(plan);
    let f = future!(
        {
            std::thread::sleep(Duration::from_secs(120));
            1u8
        },
        label = "dropped"
    );
    let job =
        slurm::running_job("futurize-dropped", Duration::from_secs(30)).expect("the job runs");
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-j", &job, "-o", "%T"])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state.is_empty() || state.starts_with("CANCELLED") || !out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "job {job} still {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a job's body sees: its plan, and the pids of a loop under it.
fn inner_pool() -> (String, Vec<u32>) {
    let inner = futurize::current_plan().unwrap().to_string();
    let pids: Vec<u32> = foreach!(_i in 0..12u32 => {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::process::id()
    } %dofuture% chunk_size = 1)
    .unwrap();
    (inner, pids)
}

#[test]
fn nested_a_job_runs_a_local_pool_inside_its_allocation() {
    let Some((plan, _registry)) = jobs("nested") else {
        return;
    };
    let _g = with_plan(futurize::Plan::from([
        plan.workers(1).into(),
        Multiprocess::workers(3).into(),
    ]));
    let (inner, pids) = future!(inner_pool()).value().unwrap();
    assert_eq!(inner, "multiprocess:3");
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{pids:?}");
}

#[test]
fn templates_and_resources_reach_the_job() {
    let Some((plan, registry)) = jobs("template") else {
        return;
    };
    let template = registry.with_extension("sh");
    std::fs::write(
        &template,
        "#!/bin/sh\n#SBATCH --comment=from-the-template\nexport FROM_TEMPLATE=yes\n{{command}}\n",
    )
    .unwrap();
    let _g = with_plan(
        plan.template(&template)
            .resources(futurize::plan::Resources::new().time("10m").cpus(1)),
    );
    let (from_template, limit) = future!({
        let id = std::env::var("SLURM_JOB_ID").unwrap();
        let out = std::process::Command::new("squeue")
            .args(["-h", "-j", &id, "-o", "%l"])
            .output()
            .unwrap();
        (
            std::env::var("FROM_TEMPLATE").ok(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    })
    .value()
    .unwrap();
    assert_eq!(from_template.as_deref(), Some("yes"));
    assert_eq!(limit, "10:00");
    // A template without a place for the command is refused before anything
    // is submitted.
    std::fs::write(&template, "#!/bin/sh\n#SBATCH --comment=x\n").unwrap();
    let _g = with_plan(Slurm::jobs().registry(&registry).template(&template));
    let e = future!(1u8).value().unwrap_err();
    assert!(e.to_string().contains("{{command}}"), "{e}");
    // A malformed resource is named, before anything is submitted.
    let _g = with_plan(
        Slurm::jobs()
            .registry(&registry)
            .resources(futurize::plan::Resources::new().mem("lots")),
    );
    let e = future!(1u8).value().unwrap_err();
    assert!(matches!(e, Error::Resources { .. }), "{e}");
    assert!(e.to_string().contains("mem = \"lots\""), "{e}");
    let _ = std::fs::remove_file(&template);
}

/// Whether this runs inside a Slurm job.
fn in_job() -> bool {
    std::env::var_os("SLURM_JOB_ID").is_some()
}

#[test]
fn resources_choose_the_backend_and_an_impossible_request_is_an_instant_error() {
    let Some((plan, _registry)) = jobs("choose") else {
        return;
    };
    let _g = with_plan(futurize::Plan::first_fit([
        Multiprocess::workers(2).into(),
        plan.into(),
    ]));
    assert_eq!(
        futurize::current_plan().unwrap().to_string(),
        "multiprocess:2|slurm"
    );
    // A small request runs here, one only Slurm has (a partition) as a job.
    let here = future!(in_job(), resources = (cpus = 1, mem = "100M"))
        .value()
        .unwrap();
    assert!(!here, "a small request runs on the local processes");
    let there = future!(in_job(), resources = (partition = "debug"))
        .value()
        .unwrap();
    assert!(there, "a partition is only Slurm's to give");
    let chunks: Vec<bool> =
        foreach!(_i in 0..4u32 => in_job() %dofuture% resources = (partition = "debug")).unwrap();
    assert_eq!(chunks, vec![true; 4]);
    // Too much for either: refused at once, naming the request and the offers.
    let started = Instant::now();
    let e = future!(1u8, resources = (mem = "100T"))
        .value()
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Resources { .. }), "{msg}");
    assert!(msg.contains("mem = \"100T\""), "{msg}");
    assert!(msg.contains("worker processes on this machine"), "{msg}");
    assert!(msg.contains("largest node"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_futures_timeout_is_its_jobs_time_limit() {
    let Some((plan, _registry)) = jobs("limit") else {
        return;
    };
    let _g = with_plan(plan);
    let limit = future!(
        {
            let id = std::env::var("SLURM_JOB_ID").unwrap();
            let out = std::process::Command::new("squeue")
                .args(["-h", "-j", &id, "-o", "%l"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        },
        timeout = "90s"
    )
    .value()
    .unwrap();
    // Slurm counts whole minutes: 90 s asks for 2.
    assert_eq!(limit, "2:00");
}
