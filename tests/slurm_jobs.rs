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
